import { generateKeyPair } from '@libp2p/crypto/keys'
import { serviceCapabilities, transportSymbol } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { webSockets as upstreamWebSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { webSockets } from '../src/index.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { recordingUpgrader } from './fixtures/recording-upgrader.ts'
import type { Libp2pEvents, PeerId, Transport } from '@libp2p/interface'

function createTransport (): Transport {
  return webSockets()({
    logger: defaultLogger(),
    events: new TypedEventEmitter<Libp2pEvents>()
  })
}

function createUpstreamTransport (): Transport {
  return upstreamWebSockets()({
    logger: defaultLogger(),
    events: new TypedEventEmitter<Libp2pEvents>()
  })
}

/**
 * Thin waist addresses every WebSocket address may start with
 */
const HOSTS = [
  '/ip4/127.0.0.1/tcp/4001',
  '/ip6/::1/tcp/4001',
  '/dns4/example.com/tcp/4001',
  '/dns6/example.com/tcp/4001',
  '/dns/example.com/tcp/4001'
]

/**
 * Every kind of WebSocket address upstream accepts
 */
function accepted (peerId: PeerId): string[] {
  const addrs: string[] = []

  for (const host of HOSTS) {
    for (const ws of ['/ws', '/tls/ws', '/wss', '/tls/sni/example.com/ws']) {
      addrs.push(`${host}${ws}`, `${host}${ws}/p2p/${peerId}`)
    }
  }

  return addrs
}

/**
 * Addresses of other transports, and WebSocket addresses behind a relay
 */
function rejected (peerId: PeerId): string[] {
  return [
    '/ip4/127.0.0.1/tcp/4001',
    `/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`,
    '/ip6/::1/tcp/4001',
    '/dns4/example.com/tcp/4001',
    '/ip4/127.0.0.1/tcp/4001/tls',
    `/ip4/127.0.0.1/tcp/4001/tls/p2p/${peerId}`,
    '/ip4/127.0.0.1/tcp/4001/tls/http',
    '/ip4/127.0.0.1/tcp/4001/http',
    '/ip4/127.0.0.1/udp/4001/quic-v1',
    '/ip4/127.0.0.1/udp/4001/quic-v1/webtransport',
    `/ip4/127.0.0.1/udp/4001/quic-v1/webtransport/p2p/${peerId}`,
    `/ip4/127.0.0.1/udp/4001/webrtc-direct/p2p/${peerId}`,
    `/ip4/127.0.0.1/tcp/4001/ws/p2p/${peerId}/p2p-circuit/p2p/${peerId}`,
    `/ip4/127.0.0.1/tcp/4001/tls/ws/p2p/${peerId}/p2p-circuit/p2p/${peerId}`,
    `/ip4/127.0.0.1/tcp/4001/ws/p2p/${peerId}/p2p-circuit`,
    `/ip4/127.0.0.1/tcp/4001/ws/p2p/${peerId}/p2p-circuit/webrtc/p2p/${peerId}`,
    `/p2p/${peerId}`,
    '/unix/%2Ftmp%2Fsocket',
    '/memory/address-1'
  ]
}

/**
 * The filter must keep exactly what upstream's keeps
 */
function describeFilter (filter: 'listenFilter' | 'dialFilter', peerId: () => PeerId): void {
  describe(filter, () => {
    it('accepts WebSocket addresses', () => {
      const transport = createTransport()

      for (const addr of accepted(peerId())) {
        expect(transport[filter]([multiaddr(addr)]).map(ma => ma.toString()), addr)
          .to.deep.equal([addr])
      }
    })

    it('rejects addresses that are not WebSocket addresses', () => {
      const transport = createTransport()

      for (const addr of rejected(peerId())) {
        expect(transport[filter]([multiaddr(addr)]), addr)
          .to.be.empty()
      }
    })

    it('keeps the WebSocket addresses of a mixed list, in order', () => {
      const transport = createTransport()
      const addrs = [
        '/ip4/127.0.0.1/tcp/4001',
        '/ip4/127.0.0.1/tcp/4002/ws',
        '/ip4/127.0.0.1/udp/4001/quic-v1/webtransport',
        '/ip6/::1/tcp/4003/tls/ws',
        '/ip4/127.0.0.1/tcp/4004/tls',
        '/dns4/example.com/tcp/443/wss'
      ].map(addr => multiaddr(addr))

      expect(transport[filter](addrs).map(ma => ma.toString())).to.deep.equal([
        '/ip4/127.0.0.1/tcp/4002/ws',
        '/ip6/::1/tcp/4003/tls/ws',
        '/dns4/example.com/tcp/443/wss'
      ])
    })

    it('agrees with upstream on every address', () => {
      const transport = createTransport()
      const upstream = createUpstreamTransport()
      const addrs = [...accepted(peerId()), ...rejected(peerId())].map(addr => multiaddr(addr))

      for (const ma of addrs) {
        expect(transport[filter]([ma]), ma.toString())
          .to.deep.equal(upstream[filter]([ma]))
      }

      expect(transport[filter](addrs)).to.deep.equal(upstream[filter](addrs))
    })
  })
}

describe('transport', () => {
  let peerId: PeerId

  before(async () => {
    peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  })

  describe('identity', () => {
    it('is a transport', () => {
      const transport = createTransport()

      expect(transport[transportSymbol]).to.equal(true)
    })

    it('has the transport service capability', () => {
      const transport: any = createTransport()

      expect(transport[serviceCapabilities]).to.include('@libp2p/transport')
    })

    it('has the same toStringTag as upstream', () => {
      const transport = createTransport()
      const upstream = createUpstreamTransport()

      expect(transport[Symbol.toStringTag]).to.equal('@libp2p/websockets')
      expect(Object.prototype.toString.call(transport)).to.equal(Object.prototype.toString.call(upstream))
    })

    it('has the same service capabilities as upstream', () => {
      const transport: any = createTransport()
      const upstream: any = createUpstreamTransport()

      expect(transport[serviceCapabilities]).to.deep.equal(upstream[serviceCapabilities])
    })
  })

  describeFilter('listenFilter', () => peerId)
  describeFilter('dialFilter', () => peerId)
})

describe('logging', () => {
  /**
   * The names a transport asks its logger for while it listens, dials and
   * accepts one connection
   */
  async function componentNames (factory: typeof webSockets): Promise<string[]> {
    const names = new Set<string>()
    const logger = {
      forComponent: (name: string) => {
        names.add(name)
        return defaultLogger().forComponent(name)
      }
    }
    const transport = factory()({ logger, events: new TypedEventEmitter<Libp2pEvents>() })
    const upgrader = recordingUpgrader()
    const listener = transport.createListener({ upgrader: upgrader.upgrader })

    try {
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      await transport.dial(listener.getAddrs()[0], { upgrader: upgrader.upgrader, signal: AbortSignal.timeout(5_000) })
      await until(() => upgrader.inbound.length === 1, 5_000, 'the inbound connection')
    } finally {
      upgrader.abortAll()
      await withDeadline(listener.close(), 5_000, 'closing the listener')
    }

    return [...names].sort()
  }

  it('logs under the component names upstream uses, so that the same DEBUG filters apply', async () => {
    const ours = await componentNames(webSockets)

    expect(ours).to.deep.equal(await componentNames(upstreamWebSockets as typeof webSockets))
    expect(ours).to.include.members(['libp2p:websockets', 'libp2p:websockets:listener', 'libp2p:websockets:connection'])
  })
})
