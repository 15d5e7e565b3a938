import { expect } from 'aegir/chai'
import proxyProtocol from 'proxy-protocol-js'
import { PROXY_V2_MAX_LENGTH } from '../src/constants.ts'
import { ProxyHeaderError, ProxyHeaderReader, startsWithProxySignature } from '../src/proxy-protocol.ts'
import { proxyV1, proxyV2, tlv, V2_SIGNATURE } from './fixtures/proxy-headers.ts'
import type { ProxyHeader } from '../src/proxy-protocol.ts'

/**
 * Feed `bytes` to a new reader in pieces of `size` bytes; the header and the
 * bytes after it, or the error
 */
function read (bytes: Buffer, size = bytes.length): { header?: ProxyHeader, rest?: Buffer, error?: ProxyHeaderError, pending?: boolean } {
  const reader = new ProxyHeaderReader()

  for (let i = 0; i < bytes.length; i += size) {
    try {
      const result = reader.push(bytes.subarray(i, i + size))

      if (result != null) {
        return { header: result.header, rest: Buffer.concat([result.rest, bytes.subarray(i + size)]) }
      }
    } catch (err: any) {
      if (!(err instanceof ProxyHeaderError)) {
        throw err
      }

      return { error: err }
    }
  }

  return { pending: true }
}

const REQUEST = Buffer.from('GET / HTTP/1.1\r\n\r\n')

describe('PROXY protocol reader', () => {
  const valid: Array<[string, Buffer, ProxyHeader]> = [
    ['v1 TCP4', proxyV1('192.0.2.7', 51_234), { version: 1, source: { host: '192.0.2.7', port: 51_234 } }],
    ['v1 TCP6', proxyV1('2001:db8::7', 1), { version: 1, source: { host: '2001:db8::7', port: 1 } }],
    ['v1 TCP6, IPv4-mapped', proxyV1('::ffff:192.0.2.9', 80, '::1'), { version: 1, source: { host: '192.0.2.9', port: 80 } }],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), { version: 1 }],
    ['v1 UNKNOWN with addresses', Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), { version: 1 }],
    ['v1 UNKNOWN with any printable ASCII after it', Buffer.from('PROXY UNKNOWN ~ ! x\r\n'), { version: 1 }],
    ['v1 of the longest length', proxyV1('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65_535, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', 65_535), { version: 1, source: { host: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65_535 } }],
    ['v2 INET', proxyV2({ source: '192.0.2.8', sourcePort: 40_000 }), { version: 2, source: { host: '192.0.2.8', port: 40_000 } }],
    ['v2 INET6', proxyV2({ source: '2001:db8::8', sourcePort: 0 }), { version: 2, source: { host: '2001:db8::8', port: 0 } }],
    ['v2 INET6, IPv4-mapped', proxyV2({ source: '::ffff:192.0.2.10', sourcePort: 9 }), { version: 2, source: { host: '192.0.2.10', port: 9 } }],
    ['v2 with TLVs', proxyV2({ source: '192.0.2.8', sourcePort: 5, tlvs: Buffer.concat([tlv(0x01, 2), tlv(0xEA, 300)]) }), { version: 2, source: { host: '192.0.2.8', port: 5 } }],
    ['v2 LOCAL (a health check) with addresses', proxyV2({ command: 0, source: '192.0.2.8' }), { version: 2 }],
    ['v2 LOCAL without addresses', proxyV2({ command: 0, family: 0 }), { version: 2 }],
    ['v2 PROXY UNSPEC', proxyV2({ family: 0, transport: 0 }), { version: 2 }],
    ['v2 PROXY UNIX', proxyV2({ family: 3 }), { version: 2 }],
    ['v2 at its length bound', proxyV2({ source: '192.0.2.8', sourcePort: 5, tlvs: tlv(0xEA, PROXY_V2_MAX_LENGTH - 12 - 3) }), { version: 2, source: { host: '192.0.2.8', port: 5 } }]
  ]

  for (const [name, header, expected] of valid) {
    for (const size of [header.length + REQUEST.length, 1, 7]) {
      it(`reads ${name}, in pieces of ${size} bytes, and leaves what follows`, () => {
        const result = read(Buffer.concat([header, REQUEST]), size)

        expect(result.error).to.be.undefined()
        expect(result.header).to.deep.equal(expected)
        expect(result.rest).to.equalBytes(REQUEST)
      })
    }
  }

  it('reads the v2 headers another implementation (proxy-protocol-js) builds', () => {
    const built = new proxyProtocol.V2ProxyProtocol(
      proxyProtocol.Command.PROXY,
      proxyProtocol.TransportProtocol.STREAM,
      new proxyProtocol.IPv4ProxyAddress(proxyProtocol.IPv4Address.createFrom([192, 0, 2, 44]), 4_444, proxyProtocol.IPv4Address.createFrom([127, 0, 0, 1]), 80)
    ).build()
    const v1 = new proxyProtocol.V1ProxyProtocol(proxyProtocol.INETProtocol.TCP4, new proxyProtocol.Peer('192.0.2.45', 4_445), new proxyProtocol.Peer('127.0.0.1', 80)).build()

    expect(read(Buffer.from(built)).header).to.deep.equal({ version: 2, source: { host: '192.0.2.44', port: 4_444 } })
    expect(read(Buffer.from(v1)).header).to.deep.equal({ version: 1, source: { host: '192.0.2.45', port: 4_445 } })
  })

  const invalid: Array<[string, Buffer, string]> = [
    ['plain HTTP', REQUEST, 'malformed'],
    ['a TLS record', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), 'malformed'],
    ['"PROXY" in lower case', Buffer.from('proxy TCP4 192.0.2.1 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 with an unknown family', Buffer.from('PROXY UDP4 192.0.2.1 127.0.0.1 1 2\r\n'), 'family'],
    ['v1 TCP4 with an IPv6 address', Buffer.from('PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 TCP6 with an IPv4 address', Buffer.from('PROXY TCP6 192.0.2.1 ::1 1 2\r\n'), 'malformed'],
    ['v1 with an address with leading zeros', Buffer.from('PROXY TCP4 192.0.2.01 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 with a host name', Buffer.from('PROXY TCP4 example.com 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 with a port above 65535', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 65536 2\r\n'), 'malformed'],
    ['v1 with a port with a leading zero', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\n'), 'malformed'],
    ['v1 with a negative port', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 -1 2\r\n'), 'malformed'],
    ['v1 with a field missing', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1\r\n'), 'malformed'],
    ['v1 with a field too many', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1 2 3\r\n'), 'malformed'],
    ['v1 with two spaces', Buffer.from('PROXY TCP4  192.0.2.1 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 ending in LF only', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 1 2\nGET / HTTP/1.1\r\n'), 'malformed'],
    ['v1 with a NUL byte', Buffer.from('PROXY TCP4 192.0.2.1\u0000 127.0.0.1 1 2\r\n'), 'malformed'],
    ['v1 with a byte above 0x7e', Buffer.from('PROXY TCP4 192.0.2.1\u00ff 127.0.0.1 1 2\r\n', 'latin1'), 'malformed'],
    ['v1 with no CRLF within 107 bytes', Buffer.from(`PROXY UNKNOWN ${'a'.repeat(200)}\r\n`), 'oversized'],
    ['v1 of 107 bytes without its CRLF', Buffer.from(`PROXY UNKNOWN ${'a'.repeat(93)}`), 'oversized'],
    ['v1 with a byte below 0x20', Buffer.from('PROXY UNKNOWN \u001f\r\n'), 'malformed'],
    ['v1 with a DEL byte', Buffer.from('PROXY UNKNOWN \u007f\r\n'), 'malformed'],
    ['v2 with a broken signature', Buffer.concat([V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0B]), proxyV2().subarray(12)]), 'malformed'],
    ['v2 of version 1', proxyV2({ version: 1 }), 'version'],
    ['v2 of version 3', proxyV2({ version: 3 }), 'version'],
    ['v2 with an unknown command', proxyV2({ command: 2 }), 'malformed'],
    ['v2 with an unknown family', proxyV2({ family: 4 }), 'family'],
    ['v2 with an unknown transport', proxyV2({ transport: 3 }), 'malformed'],
    ['v2 PROXY over DGRAM', proxyV2({ transport: 2 }), 'malformed'],
    ['v2 INET shorter than its addresses', proxyV2({ length: 11 }).subarray(0, 16 + 11), 'malformed'],
    ['v2 INET6 shorter than its addresses', proxyV2({ source: '2001:db8::1', length: 35 }).subarray(0, 16 + 35), 'malformed'],
    ['v2 announcing more than the bound', proxyV2({ length: PROXY_V2_MAX_LENGTH + 1 }), 'oversized'],
    ['v2 announcing 65535 bytes', proxyV2({ length: 65_535 }), 'oversized']
  ]

  for (const [name, bytes, reason] of invalid) {
    for (const size of [bytes.length, 1]) {
      it(`refuses ${name} (${reason}), in pieces of ${size} bytes`, () => {
        const result = read(bytes, size)

        expect(result.header, 'read as a header').to.be.undefined()
        expect(result.error?.reason).to.equal(reason)
        // what the listener's log says of the refusal
        expect(result.error).to.have.property('name', 'ProxyHeaderError')
        expect(result.error?.message).to.not.be.empty()
      })
    }
  }

  it('refuses a v1 header as soon as its bytes cannot become one, not at the CRLF', () => {
    expect(read(Buffer.from('PROXY TCP4 192.0.2.1\u0000')).error?.reason).to.equal('malformed')
    expect(read(Buffer.from('PROXZ')).error?.reason).to.equal('malformed')
    expect(read(Buffer.concat([V2_SIGNATURE, Buffer.from([0x31])])).error?.reason).to.equal('version')
    expect(read(Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x51])])).error?.reason).to.equal('family')
  })

  it('reads a v2 header that has no address block, with nothing after it', () => {
    expect(read(proxyV2({ command: 0, family: 0 }))).to.deep.equal({ header: { version: 2 }, rest: Buffer.alloc(0) })
  })

  it('waits for the rest of a header that is cut short, holding no more than its bound', () => {
    expect(read(proxyV1('192.0.2.1', 1).subarray(0, 20))).to.deep.equal({ pending: true })
    expect(read(proxyV1('192.0.2.1', 1).subarray(0, -1))).to.deep.equal({ pending: true })
    expect(read(proxyV2().subarray(0, 15))).to.deep.equal({ pending: true })
    expect(read(proxyV2({ length: PROXY_V2_MAX_LENGTH }).subarray(0, 100))).to.deep.equal({ pending: true })
    expect(read(Buffer.alloc(0))).to.deep.equal({ pending: true })
  })

  it('tells the start of a PROXY header from an HTTP request or a TLS record', () => {
    expect(startsWithProxySignature(proxyV1('192.0.2.1', 1))).to.be.true()
    expect(startsWithProxySignature(proxyV2())).to.be.true()
    expect(startsWithProxySignature(Buffer.from('PROXY '))).to.be.true()
    expect(startsWithProxySignature(Buffer.from('POST / HTTP/1.1\r\n'))).to.be.false()
    expect(startsWithProxySignature(Buffer.from('PUT / HTTP/1.1\r\n'))).to.be.false()
    expect(startsWithProxySignature(Buffer.from([0x16, 0x03, 0x01]))).to.be.false()
    expect(startsWithProxySignature(Buffer.from('\r\n\r\n'))).to.be.false()
  })
})
