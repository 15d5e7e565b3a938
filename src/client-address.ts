import { isIP } from 'node:net'
import { InvalidParametersError } from '@libp2p/interface'
import ipaddr from 'ipaddr.js'
import proxyaddr from 'proxy-addr'
import { parseForwarded } from './forwarded.ts'
import type { IncomingHttpHeaders } from 'node:http'

/**
 * Where a connection comes from, as far as we can tell
 */
export interface ClientAddress {
  host: string
  port: number

  /**
   * Whether the client reached the first trusted proxy over TLS, as the
   * proxies said (`proto=` or `X-Forwarded-Proto`); undefined if they did not
   */
  secure?: boolean
}

/**
 * An IPv4 client seen through a dual-stack socket or proxy arrives as an
 * IPv4-mapped IPv6 address: it is an IPv4 client, and libp2p's per-host limits
 * should see it as one
 */
export function normaliseHost (host: string): string {
  if (!ipaddr.isValid(host)) {
    return host
  }

  const address = ipaddr.parse(host)

  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address().toString()
  }

  return address.toString()
}

function isSecure (proto: string | undefined): boolean | undefined {
  switch (proto?.trim().toLowerCase()) {
    case 'https':
    case 'wss':
      return true
    case 'http':
    case 'ws':
      return false
    default:
      return undefined
  }
}

/**
 * The proxies whose word on a client's address we take: in a PROXY header
 * they send, and in the `Forwarded` or `X-Forwarded-For` headers of the
 * WebSocket upgrade requests they pass on. Addresses and CIDR ranges, IPv4 and
 * IPv6, as `proxy-addr` (Express's `trust proxy`) reads them
 */
export class TrustedProxies {
  readonly size: number
  private readonly trust: (address: string, index: number) => boolean

  constructor (addresses: string[] = []) {
    try {
      this.trust = proxyaddr.compile(addresses)
    } catch (err: any) {
      throw new InvalidParametersError(`trustedProxies: ${err.message}`)
    }

    this.size = addresses.length
  }

  trusts (host: string | undefined): boolean {
    return host != null && this.size > 0 && this.trust(host, 0)
  }

  /**
   * The client behind `peer` (the address that connected to us, or the one a
   * PROXY header gave): the right-most address of the forwarding headers that
   * is not itself a trusted proxy, proxy-addr's algorithm. `Forwarded` is
   * read if present, else `X-Forwarded-For`. An identifier that is not an IP
   * address (`unknown`, obfuscated, with a port in `X-Forwarded-For`), or a
   * `Forwarded` header that does not parse, leaves the address of the proxy
   * that reported it. From an untrusted peer the headers mean nothing
   */
  clientOf (peer: ClientAddress, headers: IncomingHttpHeaders): ClientAddress {
    if (!this.trusts(peer.host)) {
      return peer
    }

    let hops: Array<{ port?: number, proto?: string }>
    let xForwardedFor: string | undefined

    if (headers.forwarded != null) {
      const forwarded = parseForwarded(headers.forwarded)

      if (forwarded == null) {
        return peer
      }

      hops = forwarded
      // the hosts are single tokens: proxy-addr reads this list as it would
      // the header's, and applies its trust to it
      xForwardedFor = forwarded.map(hop => /^[\w.:-]+$/.test(hop.host) ? hop.host : 'unknown').join(',')
    } else {
      const header = headers['x-forwarded-for']
      xForwardedFor = Array.isArray(header) ? header.join(',') : header
      hops = []
    }

    if (xForwardedFor == null) {
      return peer
    }

    // [peer, nearest hop, ..., client side], cut at the first untrusted one
    const addresses = proxyaddr.all({ headers: { 'x-forwarded-for': xForwardedFor }, socket: { remoteAddress: peer.host } } as any, this.trust)
    const index = addresses.length - 1

    if (index === 0) {
      return peer
    }

    const hopAt = (i: number): { port?: number, proto?: string } | undefined => hops[hops.length - i]

    if (isIP(addresses[index]) === 0) {
      // the proxy that reported it
      return index === 1 ? peer : { host: normaliseHost(addresses[index - 1]), port: hopAt(index - 1)?.port ?? 0 }
    }

    const xForwardedProto = headers['x-forwarded-proto']
    const proto = headers.forwarded != null
      ? hopAt(index)?.proto
      : (Array.isArray(xForwardedProto) ? xForwardedProto[0] : xForwardedProto)?.split(',')[0]

    return {
      host: normaliseHost(addresses[index]),
      port: hopAt(index)?.port ?? 0,
      secure: isSecure(proto)
    }
  }
}
