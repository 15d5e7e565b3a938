import { randomBytes } from 'node:crypto'
import { stop } from '@libp2p/interface'
import { expect } from 'aegir/chai'
import { echo } from '../toolbox/echo.ts'
import { rawClient } from '../toolbox/raw-client.ts'
import { upgradeRequest } from '../toolbox/raw-websocket.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { totalOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import { proxyV1, proxyV2, tlv } from './fixtures/proxy-headers.ts'
import { proxyRelay } from './fixtures/proxy-relay.ts'
import type { ListeningNode } from './fixtures/nodes.ts'
import type { ProxyRelay } from './fixtures/proxy-relay.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Everything connects over loopback: 127.0.0.1 is the proxy, and the client
 * addresses in PROXY and forwarding headers (192.0.2.x, 2001:db8::) are data
 */
describe('behind a trusted proxy', function () {
  this.timeout(30_000)

  // the same arrays throughout, as the tests made in loops read them
  const nodes: Libp2p[] = []
  const relays: ProxyRelay[] = []

  afterEach(async () => {
    await Promise.all(relays.splice(0).map(async relay => relay.close()))
    await withDeadline(stop(...nodes.splice(0)), 10_000, 'stopping the nodes')
  })

  failOnProcessErrors()

  /**
   * The remote address of the listening node's connection with `dialer`, as
   * libp2p sees it, without the peer id
   */
  async function inboundFrom (listening: ListeningNode, dialer: Libp2p): Promise<string> {
    await until(() => listening.node.getConnections(dialer.peerId).length > 0, 5_000, 'the inbound connection')

    return listening.node.getConnections(dialer.peerId)[0].remoteAddr.toString().replace(/\/p2p\/[^/]+$/, '')
  }

  function withPeer (ma: Multiaddr, node: Libp2p): Multiaddr {
    return ma.getComponents().some(c => c.name === 'p2p') ? ma : ma.encapsulate(`/p2p/${node.peerId.toString()}`)
  }

  async function relay (listening: ListeningNode, header: Buffer): Promise<Multiaddr> {
    const r = await proxyRelay(withPeer(listening.ma, listening.node), header)
    relays.push(r)

    return r.ma
  }

  function proxiedCount (listening: ListeningNode, proxy: string): number {
    const increments = listening.metrics.increments.get('libp2p_websockets_listener_proxied_total') ?? []

    return increments.filter(values => Object.keys(values).some(label => label.endsWith(` ${proxy}`))).length
  }

  describe('PROXY protocol', () => {
    const PROXY: WebSocketsInit = { trustedProxies: ['127.0.0.1'], proxyProtocol: true }

    const cases: Array<[string, Buffer, string]> = [
      ['v1 TCP4', proxyV1('192.0.2.7', 51_234), '/ip4/192.0.2.7/tcp/51234/ws'],
      ['v1 TCP6', proxyV1('2001:db8::7', 4_000), '/ip6/2001:db8::7/tcp/4000/ws'],
      ['v2 INET', proxyV2({ source: '192.0.2.8', sourcePort: 40_000 }), '/ip4/192.0.2.8/tcp/40000/ws'],
      ['v2 INET6 with TLVs', proxyV2({ source: '2001:db8::8', sourcePort: 41_000, tlvs: tlv(0xEA, 40) }), '/ip6/2001:db8::8/tcp/41000/ws']
    ]

    for (const [name, header, remoteAddr] of cases) {
      it(`a real peer through a proxy sending ${name} is seen at the client's address`, async () => {
        const listening = await listeningNode(nodes, PROXY)
        const dialer = await dialerNode(nodes)
        const input = new Uint8Array(randomBytes(64 * 1024))

        const output = await echo(dialer, await relay(listening, header), input, { signal: AbortSignal.timeout(10_000) })

        expect(output).to.equalBytes(input)
        expect(await inboundFrom(listening, dialer)).to.equal(remoteAddr)
        expect(proxiedCount(listening, '127.0.0.1')).to.equal(1)
      })
    }

    it('a PROXY header before a TLS handshake: the client\'s address on a /tls/ws listener', async () => {
      const listening = await listeningNode(nodes, PROXY, true)
      const dialer = await dialerNode(nodes)

      await dialer.dial(await relay(listening, proxyV2({ source: '192.0.2.11', sourcePort: 4_001 })), { signal: AbortSignal.timeout(10_000) })

      expect(await inboundFrom(listening, dialer)).to.equal('/ip4/192.0.2.11/tcp/4001/tls/ws')
    })

    it('a v2 LOCAL header (a health check) keeps the proxy\'s address', async () => {
      const listening = await listeningNode(nodes, PROXY)
      const dialer = await dialerNode(nodes)

      await dialer.dial(await relay(listening, proxyV2({ command: 0, source: '192.0.2.9' })), { signal: AbortSignal.timeout(10_000) })

      expect(await inboundFrom(listening, dialer)).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws$/)
    })

    const refused: Array<[string, Buffer, string]> = [
      ['no header at all', Buffer.alloc(0), 'proxy_malformed'],
      ['a malformed v1 header', Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 99999 1\r\n'), 'proxy_malformed'],
      ['an oversized v1 header', Buffer.from(`PROXY UNKNOWN ${'x'.repeat(120)}\r\n`), 'proxy_oversized'],
      ['an oversized v2 header', proxyV2({ length: 60_000 }), 'proxy_oversized'],
      ['a header of an unknown version', proxyV2({ version: 3 }), 'proxy_version'],
      ['a header of an unknown family', proxyV2({ family: 5 }), 'proxy_family'],
      ['two headers, the second one the client\'s', Buffer.concat([proxyV1('192.0.2.1', 1), proxyV1('192.0.2.66', 1)]), 'proxy_untrusted']
    ]

    for (const [name, header, event] of refused) {
      it(`a trusted proxy sending ${name} has its socket destroyed and counted (${event}), nothing else`, async () => {
        const listening = await listeningNode(nodes, PROXY)
        const client = await rawClient(listening.ma)
        client.write(Buffer.concat([header, Buffer.from(upgradeRequest())]))

        await client.waitFor(c => c.closed, 5_000, 'the listener destroying the socket')
        expect(client.received.toString('latin1')).to.not.include('101')
        expect(listenerEventCount(listening.metrics, event)).to.equal(1)
        await until(() => totalOf(listening.listener.socketCounts()) === 0, 5_000, 'the listener letting go of the socket')

        // a real peer through the proxy still gets through
        const dialer = await dialerNode(nodes)
        await dialer.dial(await relay(listening, proxyV1('192.0.2.10', 10)), { signal: AbortSignal.timeout(10_000) })
        expect(await inboundFrom(listening, dialer)).to.equal('/ip4/192.0.2.10/tcp/10/ws')
      })
    }

    it('a header cut short by the proxy closing is counted as truncated', async () => {
      const listening = await listeningNode(nodes, PROXY)
      const client = await rawClient(listening.ma)
      client.write(proxyV2().subarray(0, 20))
      client.socket.end()

      await client.waitFor(c => c.closed, 5_000, 'the listener destroying the socket')
      await until(() => listenerEventCount(listening.metrics, 'proxy_truncated') === 1, 5_000, 'the truncated header being counted')
      await until(() => totalOf(listening.listener.socketCounts()) === 0, 5_000, 'the listener letting go of the socket')
    })

    it('a header that does not arrive within the handshake deadline is counted, the socket destroyed', async () => {
      const listening = await listeningNode(nodes, { ...PROXY, handshakeTimeout: 300 })
      const client = await rawClient(listening.ma)
      client.write(Buffer.from('PROXY TCP4 192.0.2.1'))

      await client.waitFor(c => c.closed, 5_000, 'the listener destroying the socket')
      expect(listenerEventCount(listening.metrics, 'proxy_timeout')).to.equal(1)
      expect(listenerEventCount(listening.metrics, 'handshake_timeout')).to.equal(0)
    })

    it('a proxy that ends its connection after a whole header has not cut the header short', async () => {
      const listening = await listeningNode(nodes, PROXY)
      const client = await rawClient(listening.ma)
      client.write(Buffer.concat([proxyV1('192.0.2.1', 1), Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')]))
      await until(() => listening.listener.socketCounts().http === 1, 5_000, 'the request reaching the HTTP server')

      client.socket.end()

      await client.waitFor(c => c.closed, 5_000, 'the listener closing the socket')
      expect(listenerEventCount(listening.metrics, 'proxy_truncated')).to.equal(0)
    })

    it('a client silent after its proxy\'s header is counted as a handshake timeout, not a PROXY one', async () => {
      const listening = await listeningNode(nodes, { ...PROXY, handshakeTimeout: 300 })
      const client = await rawClient(listening.ma)
      client.write(proxyV1('192.0.2.1', 1))

      await client.waitFor(c => c.closed, 5_000, 'the listener destroying the socket')
      expect(listenerEventCount(listening.metrics, 'handshake_timeout')).to.equal(1)
      expect(listenerEventCount(listening.metrics, 'proxy_timeout')).to.equal(0)
    })

    it('a socket waiting for its header is terminated when the node stops', async () => {
      const listening = await listeningNode(nodes, PROXY)
      const client = await rawClient(listening.ma)
      client.write(Buffer.from('PROXY TCP4 '))
      await until(() => listening.listener.socketCounts().accepted === 1, 5_000, 'the socket being accepted')

      await withDeadline(listening.node.stop(), 5_000, 'stopping the node')
      await client.waitFor(c => c.closed, 5_000, 'the socket being terminated')
    })

    it('a client that is not a trusted proxy may connect without a header, and not with one', async () => {
      // 127.0.0.1 is not trusted here: only a documentation address is
      const listening = await listeningNode(nodes, { trustedProxies: ['198.51.100.1'], proxyProtocol: true })
      const dialer = await dialerNode(nodes)
      await dialer.dial(withPeer(listening.ma, listening.node), { signal: AbortSignal.timeout(10_000) })
      expect(await inboundFrom(listening, dialer)).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws$/)

      for (const header of [proxyV1('192.0.2.1', 1), proxyV2()]) {
        const client = await rawClient(listening.ma)
        client.write(Buffer.concat([header, Buffer.from(upgradeRequest())]))
        await client.waitFor(c => c.closed, 5_000, 'the listener destroying the socket')
      }

      expect(listenerEventCount(listening.metrics, 'proxy_untrusted')).to.equal(2)
      expect(proxiedCount(listening, '127.0.0.1')).to.equal(0)
    })

    it('refuses proxyProtocol without trustedProxies, and trustedProxies that are not addresses', async () => {
      await expect(listeningNode(nodes, { proxyProtocol: true })).to.eventually.be.rejectedWith(/trustedProxies/)
      await expect(listeningNode(nodes, { trustedProxies: ['proxy.example'] })).to.eventually.be.rejectedWith(/trustedProxies/)
    })
  })

  describe('forwarding headers', () => {
    async function dialWithHeaders (listening: ListeningNode, headers: Record<string, string>): Promise<string> {
      const dialer = await dialerNode(nodes, { websocket: { headers } })
      await dialer.dial(withPeer(listening.ma, listening.node), { signal: AbortSignal.timeout(10_000) })

      return inboundFrom(listening, dialer)
    }

    it('X-Forwarded-For from a trusted proxy names the client; X-Forwarded-Proto says /ws or /tls/ws', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'] })

      expect(await dialWithHeaders(listening, { 'X-Forwarded-For': '192.0.2.20' })).to.equal('/ip4/192.0.2.20/tcp/0/ws')
      expect(await dialWithHeaders(listening, { 'X-Forwarded-For': '2001:db8::20', 'X-Forwarded-Proto': 'https' })).to.equal('/ip6/2001:db8::20/tcp/0/tls/ws')
      expect(await dialWithHeaders(listening, { 'X-Forwarded-For': 'unknown' })).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/[1-9]\d*\/ws$/)
      expect(proxiedCount(listening, '127.0.0.1')).to.equal(3)
    })

    it('Forwarded from a trusted proxy names the client, its port and its protocol', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'] })

      expect(await dialWithHeaders(listening, { Forwarded: 'for="[2001:db8::21]:4711";proto=https' })).to.equal('/ip6/2001:db8::21/tcp/4711/tls/ws')
      expect(await dialWithHeaders(listening, { Forwarded: 'for=_hidden' })).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/[1-9]\d*\/ws$/)
    })

    it('the forwarding headers of a client that is not a trusted proxy are ignored', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['198.51.100.1'] })

      expect(await dialWithHeaders(listening, { 'X-Forwarded-For': '192.0.2.22', Forwarded: 'for=192.0.2.23' })).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/[1-9]\d*\/ws$/)
      expect(proxiedCount(listening, '127.0.0.1')).to.equal(0)
    })
  })

  describe('libp2p\'s per-host inbound rate limit', () => {
    const THRESHOLD = 2

    /**
     * Dial from three fresh peers as client A and one as client B, at once,
     * well within the limiter's one-second window; how many got through
     */
    async function dialAsClients (listening: ListeningNode, dialerFor: (client: string) => Promise<{ dialer: Libp2p, ma: Multiaddr }>): Promise<{ a: number, b: number }> {
      const a = await Promise.all([1, 2, 3].map(async () => dialerFor('192.0.2.31')))
      const b = await dialerFor('192.0.2.32')

      const results = await withDeadline(Promise.allSettled([...a, b].map(async ({ dialer, ma }) => dialer.dial(ma, { signal: AbortSignal.timeout(10_000) }))), 15_000, 'the dials')
      const fulfilled = results.map(result => result.status === 'fulfilled')

      return { a: fulfilled.slice(0, 3).filter(Boolean).length, b: fulfilled[3] ? 1 : 0 }
    }

    async function forwardedDialer (listening: ListeningNode, client: string): Promise<{ dialer: Libp2p, ma: Multiaddr }> {
      const dialer = await dialerNode(nodes, { websocket: { headers: { 'X-Forwarded-For': client } } })

      return { dialer, ma: withPeer(listening.ma, listening.node) }
    }

    async function proxyProtocolDialer (listening: ListeningNode, client: string): Promise<{ dialer: Libp2p, ma: Multiaddr }> {
      const dialer = await dialerNode(nodes)

      return { dialer, ma: await relay(listening, proxyV2({ source: client })) }
    }

    it('two clients behind one trusted proxy (X-Forwarded-For) are limited separately', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'] }, false, { inboundConnectionThreshold: THRESHOLD })

      expect(await dialAsClients(listening, async client => forwardedDialer(listening, client))).to.deep.equal({ a: THRESHOLD, b: 1 })
    })

    it('two clients behind one trusted proxy (PROXY v2) are limited separately', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'], proxyProtocol: true }, false, { inboundConnectionThreshold: THRESHOLD })

      expect(await dialAsClients(listening, async client => proxyProtocolDialer(listening, client))).to.deep.equal({ a: THRESHOLD, b: 1 })
    })

    it('forged forwarding headers from a client that is not trusted change nothing: one host, one limit', async () => {
      const listening = await listeningNode(nodes, { trustedProxies: ['198.51.100.1'] }, false, { inboundConnectionThreshold: THRESHOLD })
      const { a, b } = await dialAsClients(listening, async client => forwardedDialer(listening, client))

      expect(a + b).to.equal(THRESHOLD)
    })
  })
})
