import { expect } from 'aegir/chai'
import { normaliseHost, TrustedProxies } from '../src/client-address.ts'
import { parseForwarded } from '../src/forwarded.ts'
import type { ClientAddress } from '../src/client-address.ts'

/**
 * The client addresses in these headers are data from documentation ranges;
 * only 127.0.0.1 and ::1 ever connect in the tests
 */
const PEER: ClientAddress = { host: '127.0.0.1', port: 40_000 }

describe('forwarding headers', () => {
  describe('parseForwarded (RFC 7239)', () => {
    it('reads the examples of RFC 7239', () => {
      expect(parseForwarded('for="_gazonk"')).to.deep.equal([{ host: '_gazonk', port: undefined, proto: undefined }])
      expect(parseForwarded('For="[2001:db8:cafe::17]:4711"')).to.deep.equal([{ host: '2001:db8:cafe::17', port: 4711, proto: undefined }])
      expect(parseForwarded('for=192.0.2.60;proto=http;by=203.0.113.43')).to.deep.equal([{ host: '192.0.2.60', port: undefined, proto: 'http' }])
      expect(parseForwarded('for=192.0.2.43, for=198.51.100.17')).to.deep.equal([
        { host: '192.0.2.43', port: undefined, proto: undefined },
        { host: '198.51.100.17', port: undefined, proto: undefined }
      ])
    })

    it('reads quoted IPv4 nodes with ports, obfuscated ports, unknown and elements without for', () => {
      expect(parseForwarded('for="192.0.2.43:47011";proto=HTTPS')).to.deep.equal([{ host: '192.0.2.43', port: 47011, proto: 'https' }])
      expect(parseForwarded('for="[2001:db8::1]:_p"')).to.deep.equal([{ host: '2001:db8::1', port: undefined, proto: undefined }])
      expect(parseForwarded('for=unknown')).to.deep.equal([{ host: 'unknown', port: undefined, proto: undefined }])
      expect(parseForwarded('proto=https')).to.deep.equal([{ host: 'unknown', port: undefined, proto: 'https' }])
      expect(parseForwarded(['for=192.0.2.1', 'for=192.0.2.2'])?.map(hop => hop.host)).to.deep.equal(['192.0.2.1', '192.0.2.2'])
    })

    it('reads what the grammar allows around values: spaces and tabs, quoted pairs, any case, ports at their bounds', () => {
      expect(parseForwarded('for=192.0.2.1 ;\tproto=https ,\tfor=192.0.2.2')).to.deep.equal([
        { host: '192.0.2.1', port: undefined, proto: 'https' },
        { host: '192.0.2.2', port: undefined, proto: undefined }
      ])
      expect(parseForwarded('for="192.0.2.\\1:\\80"')).to.deep.equal([{ host: '192.0.2.1', port: 80, proto: undefined }])
      expect(parseForwarded('FOR =192.0.2.1')?.map(hop => hop.host)).to.deep.equal(['192.0.2.1'])
      expect(parseForwarded('for="192.0.2.1:65535", for="192.0.2.1:65536", for="[2001:db8::1]:0"')?.map(hop => hop.port)).to.deep.equal([65_535, undefined, 0])
      expect(parseForwarded('for="[2001:db8::1]", for="[2001:db8::1]x80"')?.map(hop => hop.port)).to.deep.equal([undefined, undefined])
      // not the grammar's (IPv6 must be in brackets), but what some proxies send
      expect(parseForwarded('for="2001:db8::1"')).to.deep.equal([{ host: '2001:db8::1', port: undefined, proto: undefined }])
    })

    it('says nothing of a header that does not follow the grammar', () => {
      for (const header of [
        'for=[2001:db8::1]',
        'for="192.0.2.1',
        'for',
        'for=192.0.2.1;for=192.0.2.2',
        'for=192.0.2.1 junk',
        'f o r=192.0.2.1',
        'for=a"b'
      ]) {
        expect(parseForwarded(header), header).to.be.undefined()
      }

      expect(parseForwarded(undefined)).to.be.undefined()
    })
  })

  describe('TrustedProxies', () => {
    it('refuses what is not an address or a range', () => {
      expect(() => new TrustedProxies(['not an address'])).to.throw(/trustedProxies/)
      expect(() => new TrustedProxies(['192.0.2.0/33'])).to.throw(/trustedProxies/)
    })

    it('trusts addresses and ranges, IPv4, IPv6 and IPv4-mapped', () => {
      const trusted = new TrustedProxies(['127.0.0.1', '2001:db8::/32', '198.51.100.0/24'])

      expect(trusted.trusts('127.0.0.1')).to.be.true()
      expect(trusted.trusts('::ffff:127.0.0.1')).to.be.true()
      expect(trusted.trusts('2001:db8:1::5')).to.be.true()
      expect(trusted.trusts('198.51.100.77')).to.be.true()
      expect(trusted.trusts('127.0.0.2')).to.be.false()
      expect(trusted.trusts('::1')).to.be.false()
      expect(trusted.trusts(undefined)).to.be.false()
      expect(new TrustedProxies().trusts('127.0.0.1')).to.be.false()
    })

    it('takes the client from X-Forwarded-For and X-Forwarded-Proto from a trusted proxy', () => {
      const trusted = new TrustedProxies(['127.0.0.1'])

      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '192.0.2.1' })).to.deep.equal({ host: '192.0.2.1', port: 0, secure: undefined })
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '2001:db8::1', 'x-forwarded-proto': 'https' })).to.deep.equal({ host: '2001:db8::1', port: 0, secure: true })
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '192.0.2.1', 'x-forwarded-proto': 'http, https' })).to.deep.equal({ host: '192.0.2.1', port: 0, secure: false })
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '::ffff:192.0.2.1' })).to.deep.equal({ host: '192.0.2.1', port: 0, secure: undefined })
    })

    it('reads ws and wss as well as http and https from X-Forwarded-Proto, and nothing else', () => {
      const trusted = new TrustedProxies(['127.0.0.1'])
      const secure = (proto: string): boolean | undefined => trusted.clientOf(PEER, { 'x-forwarded-for': '192.0.2.1', 'x-forwarded-proto': proto }).secure

      expect(['wss', 'WS', 'https', 'http', 'ftp', ''].map(secure)).to.deep.equal([true, false, true, false, undefined, undefined])
    })

    it('leaves a host that is not an IP address as it is', () => {
      expect(normaliseHost('unknown')).to.equal('unknown')
      expect(normaliseHost('::ffff:192.0.2.1')).to.equal('192.0.2.1')
    })

    it('takes the right-most address that is not a trusted proxy', () => {
      const trusted = new TrustedProxies(['127.0.0.1', '198.51.100.0/24'])

      // a client may put anything on the left: only what trusted proxies
      // appended counts
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '203.0.113.9, 192.0.2.1, 198.51.100.2' }).host).to.equal('192.0.2.1')
      expect(trusted.clientOf(PEER, { forwarded: 'for=203.0.113.9, for="192.0.2.1:555";proto=https, for=198.51.100.2;proto=http' })).to.deep.equal({ host: '192.0.2.1', port: 555, secure: true })
      // every hop trusted: the left-most is the client
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '198.51.100.3, 198.51.100.2' }).host).to.equal('198.51.100.3')
    })

    it('prefers Forwarded to X-Forwarded-For', () => {
      const trusted = new TrustedProxies(['127.0.0.1'])

      expect(trusted.clientOf(PEER, { forwarded: 'for=192.0.2.1', 'x-forwarded-for': '192.0.2.2' }).host).to.equal('192.0.2.1')
    })

    it('keeps the reporting proxy\'s address for unknown, obfuscated or unparseable identifiers', () => {
      const trusted = new TrustedProxies(['127.0.0.1', '198.51.100.0/24'])

      expect(trusted.clientOf(PEER, { forwarded: 'for=unknown' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { forwarded: 'for=_hidden' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { forwarded: 'for=[2001:db8::1]' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { forwarded: 'for="a, 192.0.2.1"' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { forwarded: 'proto=https' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': 'unknown' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '192.0.2.1:1234' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '' })).to.deep.equal(PEER)
      // the unknown one behind a second trusted proxy: that proxy's address
      expect(trusted.clientOf(PEER, { forwarded: 'for=unknown, for="198.51.100.2:81"' })).to.deep.equal({ host: '198.51.100.2', port: 81 })
      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '_x, 198.51.100.2' })).to.deep.equal({ host: '198.51.100.2', port: 0 })
    })

    it('ignores the headers of a peer that is not a trusted proxy', () => {
      const trusted = new TrustedProxies(['198.51.100.0/24'])

      expect(trusted.clientOf(PEER, { 'x-forwarded-for': '192.0.2.1' })).to.deep.equal(PEER)
      expect(trusted.clientOf(PEER, { forwarded: 'for=192.0.2.1' })).to.deep.equal(PEER)
      expect(new TrustedProxies().clientOf(PEER, { 'x-forwarded-for': '192.0.2.1' })).to.deep.equal(PEER)
    })
  })
})
