import { isIPv4, isIPv6 } from 'node:net'
import ipaddr from 'ipaddr.js'
import { normaliseHost as normalise } from './client-address.ts'
import { PROXY_V2_MAX_LENGTH } from './constants.ts'

/**
 * A PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2),
 * read from the bytes a proxy sends before anything of its client's
 */
export interface ProxyHeader {
  version: 1 | 2

  /**
   * The client's address and port, or undefined where the header says to
   * keep the connection's own: a v1 `UNKNOWN`, a v2 `LOCAL` command (a
   * proxy's own health check), or a v2 family with no IP address (`UNSPEC`,
   * `UNIX`)
   */
  source?: { host: string, port: number }
}

export type ProxyHeaderErrorReason = 'malformed' | 'oversized' | 'version' | 'family'

export class ProxyHeaderError extends Error {
  readonly reason: ProxyHeaderErrorReason

  constructor (reason: ProxyHeaderErrorReason, message: string) {
    super(message)
    this.name = 'ProxyHeaderError'
    this.reason = reason
  }
}

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')

/**
 * The spec's bound for a v1 header, CRLF included
 */
const V1_MAX_LENGTH = 107
const V2_SIGNATURE = Buffer.from([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
const V2_FIXED_LENGTH = 16
const PORT = /^(0|[1-9][0-9]{0,4})$/

/**
 * Whether `bytes` agree with the start of `signature` as far as both go
 */
function agrees (bytes: Buffer, signature: Buffer): boolean {
  const length = Math.min(bytes.length, signature.length)

  return bytes.subarray(0, length).equals(signature.subarray(0, length))
}

/**
 * Whether data starts with a complete PROXY v1 or v2 signature: what a client
 * that is not a trusted proxy must not send
 */
export function startsWithProxySignature (data: Buffer): boolean {
  return (data.length >= V1_PREFIX.length && agrees(data, V1_PREFIX)) ||
    (data.length >= V2_SIGNATURE.length && agrees(data, V2_SIGNATURE))
}

/**
 * Reads one PROXY header from a stream's chunks as they arrive, holding no
 * more than the header's bound: 107 bytes for v1, 16 plus `maxV2Length` for
 * v2. `push()` returns the header and whatever followed it in the same chunk
 * once the header is complete, undefined while more bytes are needed, and
 * throws a `ProxyHeaderError` as soon as the bytes cannot be a valid header.
 *
 * `proxy-protocol-js` parses a complete buffer only: the framing, which is
 * where a hostile or broken peer is met, would have been ours anyway
 */
export class ProxyHeaderReader {
  private buffered: Buffer
  private readonly maxV2Length: number

  constructor (maxV2Length = PROXY_V2_MAX_LENGTH) {
    this.buffered = Buffer.alloc(0)
    this.maxV2Length = maxV2Length
  }

  push (chunk: Buffer): { header: ProxyHeader, rest: Buffer } | undefined {
    const data = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])

    if (data.length === 0) {
      return
    }

    let result: { header: ProxyHeader, length: number } | undefined

    if (data[0] === V1_PREFIX[0]) {
      result = readV1(data)
    } else if (data[0] === V2_SIGNATURE[0]) {
      result = readV2(data, this.maxV2Length)
    } else {
      throw new ProxyHeaderError('malformed', 'The connection does not start with a PROXY header')
    }

    if (result == null) {
      // bounded by the readers, which throw past their maximum length
      this.buffered = Buffer.from(data)
      return
    }

    this.buffered = Buffer.alloc(0)

    return { header: result.header, rest: data.subarray(result.length) }
  }
}

function readV1 (data: Buffer): { header: ProxyHeader, length: number } | undefined {
  if (!agrees(data, V1_PREFIX)) {
    throw new ProxyHeaderError('malformed', 'The connection does not start with a PROXY header')
  }

  const end = data.subarray(0, V1_MAX_LENGTH).indexOf('\r\n', 0, 'latin1')

  if (end === -1) {
    if (data.length >= V1_MAX_LENGTH) {
      throw new ProxyHeaderError('oversized', `PROXY v1 header longer than ${V1_MAX_LENGTH} bytes`)
    }

    // a lone CR or LF anywhere else, or a byte that is not printable ASCII,
    // can never become a valid header
    const lastIndex = data[data.length - 1] === 0x0D ? data.length - 1 : data.length

    for (let i = 0; i < lastIndex; i++) {
      if (data[i] < 0x20 || data[i] > 0x7E) {
        throw new ProxyHeaderError('malformed', 'PROXY v1 header with a byte that is not printable ASCII')
      }
    }

    return
  }

  const line = data.subarray(0, end).toString('latin1')

  if (!/^[\x20-\x7E]*$/.test(line)) {
    throw new ProxyHeaderError('malformed', 'PROXY v1 header with a byte that is not printable ASCII')
  }

  const fields = line.split(' ')
  const length = end + 2

  if (fields[1] === 'UNKNOWN') {
    // the receiver ignores whatever follows UNKNOWN
    return { header: { version: 1 }, length }
  }

  if (fields.length !== 6) {
    throw new ProxyHeaderError('malformed', 'PROXY v1 header without exactly five fields')
  }

  const [, family, source, destination, sourcePort, destinationPort] = fields
  const isFamily = ({ TCP4: isIPv4, TCP6: isIPv6 } as Record<string, (input: string) => boolean>)[family]

  if (isFamily == null) {
    throw new ProxyHeaderError('family', 'PROXY v1 header with an unknown protocol family')
  }

  if (!isFamily(source) || !isFamily(destination)) {
    throw new ProxyHeaderError('malformed', `PROXY v1 header with an address that is not ${family}`)
  }

  if (!isPort(sourcePort) || !isPort(destinationPort)) {
    throw new ProxyHeaderError('malformed', 'PROXY v1 header with an invalid port')
  }

  return { header: { version: 1, source: { host: normalise(source), port: Number(sourcePort) } }, length }
}

function isPort (field: string): boolean {
  return PORT.test(field) && Number(field) <= 65_535
}

function readV2 (data: Buffer, maxV2Length: number): { header: ProxyHeader, length: number } | undefined {
  if (!agrees(data, V2_SIGNATURE)) {
    throw new ProxyHeaderError('malformed', 'The connection does not start with a PROXY header')
  }

  if (data.length < V2_FIXED_LENGTH) {
    // the version, command and family are checked as soon as they arrive
    if (data.length > 12) {
      checkVersionAndCommand(data[12])
    }

    if (data.length > 13) {
      checkFamily(data[13])
    }

    return
  }

  const command = checkVersionAndCommand(data[12])
  const { family, transport } = checkFamily(data[13])
  const addressLength = data.readUInt16BE(14)

  if (addressLength > maxV2Length) {
    throw new ProxyHeaderError('oversized', `PROXY v2 header announcing ${addressLength} bytes, more than ${maxV2Length}`)
  }

  const length = V2_FIXED_LENGTH + addressLength

  if (data.length < length) {
    return
  }

  // a LOCAL connection is the proxy's own: its address block, if any, is
  // ignored, and so are families and transports without an IP address
  if (command === 'local' || family === 'unspec' || family === 'unix') {
    return { header: { version: 2 }, length }
  }

  if (transport !== 'stream') {
    throw new ProxyHeaderError('malformed', 'PROXY v2 header for a connection that is not a stream')
  }

  const block = data.subarray(V2_FIXED_LENGTH, length)
  const addressBytes = family === 'inet' ? 4 : 16

  // source and destination addresses, then source and destination ports; any
  // TLVs after them are ignored
  if (block.length < addressBytes * 2 + 4) {
    throw new ProxyHeaderError('malformed', `PROXY v2 header too short for its ${family === 'inet' ? 'IPv4' : 'IPv6'} addresses`)
  }

  const host = ipaddr.fromByteArray([...block.subarray(0, addressBytes)])
  const port = block.readUInt16BE(addressBytes * 2)

  return { header: { version: 2, source: { host: normalise(host.toString()), port } }, length }
}

function checkVersionAndCommand (byte: number): 'local' | 'proxy' {
  if (byte >> 4 !== 2) {
    throw new ProxyHeaderError('version', `PROXY header of unknown version ${byte >> 4}`)
  }

  switch (byte & 0x0F) {
    case 0: return 'local'
    case 1: return 'proxy'
    default: throw new ProxyHeaderError('malformed', `PROXY v2 header with unknown command ${byte & 0x0F}`)
  }
}

function checkFamily (byte: number): { family: 'unspec' | 'inet' | 'inet6' | 'unix', transport: 'unspec' | 'stream' | 'dgram' } {
  const family = (['unspec', 'inet', 'inet6', 'unix'] as const)[byte >> 4]
  const transport = (['unspec', 'stream', 'dgram'] as const)[byte & 0x0F]

  if (family == null) {
    throw new ProxyHeaderError('family', `PROXY v2 header with unknown address family ${byte >> 4}`)
  }

  if (transport == null) {
    throw new ProxyHeaderError('malformed', `PROXY v2 header with unknown transport ${byte & 0x0F}`)
  }

  return { family, transport }
}
