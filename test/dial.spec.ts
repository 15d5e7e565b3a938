import { randomBytes } from 'node:crypto'
import { getEventListeners } from 'node:events'
import net from 'node:net'
import { AbortError, ConnectionFailedError, stop } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { getNetConfig } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { pEvent } from 'p-event'
import { WebSocketServer } from 'ws'
import { webSockets } from '../src/index.ts'
import { echo, handleEcho } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { certificate } from './fixtures/certificate.ts'
import { recordingMetrics } from './fixtures/recording-metrics.ts'
import { recordingUpgrader } from './fixtures/recording-upgrader.ts'
import type { OutboundPhase, WebSocketsInit } from '../src/index.ts'
import type { RecordingUpgrader } from './fixtures/recording-upgrader.ts'
import type { DialTransportOptions, Libp2p, Libp2pEvents, Metrics, Transport } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { MultiaddrMatcher } from '@multiformats/multiaddr-matcher'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { WebSocket } from 'ws'

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 10_000

function addressOf (node: Libp2p, matcher: MultiaddrMatcher): Multiaddr {
  const ma = node.getMultiaddrs().find(ma => matcher.exactMatch(ma))

  if (ma == null) {
    throw new Error(`${node.peerId} has no address matching the transport under test`)
  }

  return ma
}

describe('dial', function () {
  this.timeout(30_000)

  let nodes: Libp2p[]
  let closers: Array<() => Promise<void>>
  let upgrader: RecordingUpgrader

  beforeEach(() => {
    nodes = []
    closers = []
    upgrader = recordingUpgrader()
  })

  afterEach(async () => {
    upgrader.abortAll()
    await Promise.all(closers.map(async close => close()))

    await stop(...nodes)
  })

  function createTransport (init?: WebSocketsInit, metrics?: Metrics): Transport {
    return webSockets(init)({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>(),
      metrics
    })
  }

  async function createListeningNode (listen: string, init?: WebSocketsInit): Promise<Libp2p> {
    const node = await createNode({
      listen: [listen],
      init
    })
    nodes.push(node)
    await handleEcho(node)

    return node
  }

  async function createDialingNode (init?: WebSocketsInit): Promise<Libp2p> {
    const node = await createNode({
      listen: [],
      init
    })
    nodes.push(node)

    return node
  }

  /**
   * A plain `ws` server on loopback that records the upgrade requests it gets
   */
  async function createWebSocketServer (): Promise<{ ma: Multiaddr, requests: IncomingMessage[] }> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    const requests: IncomingMessage[] = []
    const sockets: WebSocket[] = []

    server.on('connection', (socket, req) => {
      sockets.push(socket)
      requests.push(req)
    })
    closers.push(async () => {
      sockets.forEach(socket => { socket.terminate() })
      await new Promise<void>(resolve => {
        server.close(() => { resolve() })
      })
    })

    await pEvent(server, 'listening', {
      signal: AbortSignal.timeout(DEADLINE)
    })

    const { port } = server.address() as AddressInfo

    return {
      ma: multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`),
      requests
    }
  }

  /**
   * A loopback port nothing listens on
   */
  async function closedPort (): Promise<number> {
    const server = net.createServer()
    server.listen(0, '127.0.0.1')
    await pEvent(server, 'listening', {
      signal: AbortSignal.timeout(DEADLINE)
    })

    const { port } = server.address() as AddressInfo

    await new Promise<void>(resolve => {
      server.close(() => { resolve() })
    })

    return port
  }

  function socketCountsOf (transport: Transport): Record<OutboundPhase, number> {
    return (transport as Transport & { socketCounts(): Record<OutboundPhase, number> }).socketCounts()
  }

  async function assertEcho (dialer: Libp2p, ma: Multiaddr, size = 64 * 1024): Promise<void> {
    const input = new Uint8Array(randomBytes(size))
    const output = await echo(dialer, ma, input, {
      signal: AbortSignal.timeout(DEADLINE)
    })

    expect(output).to.equalBytes(input)
  }

  describe('libp2p nodes', () => {
    it('dials a node on ip4', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/ws')
      const dialer = await createDialingNode()
      const ma = addressOf(listener, WebSockets)

      const connection = await dialer.dial(ma, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(connection.remotePeer.equals(listener.peerId)).to.be.true()
      expect(connection.remoteAddr.toString()).to.equal(ma.toString())
      await assertEcho(dialer, ma)
    })

    it('dials a node on ip6', async () => {
      const listener = await createListeningNode('/ip6/::1/tcp/0/ws')
      const dialer = await createDialingNode()
      const ma = addressOf(listener, WebSockets)

      expect(ma.toString()).to.match(/^\/ip6\/::1\//)

      const connection = await dialer.dial(ma, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(connection.remotePeer.equals(listener.peerId)).to.be.true()
      await assertEcho(dialer, ma)
    })

    it('dials a node on tls/ws trusting its certificate authority', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/tls/ws', {
        https: certificate
      })
      const dialer = await createDialingNode({
        websocket: {
          ca: certificate.cert
        }
      })
      const ma = addressOf(listener, WebSocketsSecure)

      const connection = await dialer.dial(ma, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(connection.remotePeer.equals(listener.peerId)).to.be.true()
      expect(WebSocketsSecure.exactMatch(connection.remoteAddr)).to.be.true()
      await assertEcho(dialer, ma)
    })

    it('dials a node on tls/ws without verifying its certificate', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/tls/ws', {
        https: certificate
      })
      const dialer = await createDialingNode({
        websocket: {
          rejectUnauthorized: false
        }
      })
      const ma = addressOf(listener, WebSocketsSecure)

      const connection = await dialer.dial(ma, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(connection.remotePeer.equals(listener.peerId)).to.be.true()
      await assertEcho(dialer, ma)
    })

    it('reports the open-connection progress event', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/ws')
      const dialer = await createDialingNode()
      const events: string[] = []

      await dialer.dial(addressOf(listener, WebSockets), {
        signal: AbortSignal.timeout(DEADLINE),
        onProgress: (evt) => {
          events.push(evt.type)
        }
      })

      expect(events).to.include('websockets:open-connection')
      expect(events).to.include('upgrader:encrypt-outbound-connection')
      expect(events.indexOf('websockets:open-connection')).to.be.lessThan(events.indexOf('upgrader:encrypt-outbound-connection'))
    })

    it('moves data with a small maxBufferedAmount', async () => {
      const init: WebSocketsInit = {
        maxBufferedAmount: 1024,
        bufferedAmountPollInterval: 5
      }
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/ws', init)
      const dialer = await createDialingNode(init)

      await assertEcho(dialer, addressOf(listener, WebSockets), 1024 * 1024)
    })
  })

  describe('websocket client options', () => {
    it('sends custom headers', async () => {
      const { ma, requests } = await createWebSocketServer()
      const transport = createTransport({
        websocket: {
          headers: {
            'x-cleanstop-test': 'hello'
          }
        }
      })

      await transport.dial(ma, {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(upgrader.outbound).to.have.lengthOf(1)
      expect(upgrader.outbound[0].remoteAddr.toString()).to.equal(ma.toString())
      expect(requests).to.have.lengthOf(1)
      expect(requests[0].headers).to.have.property('x-cleanstop-test', 'hello')
    })

    it('does not offer compression, which noise ciphertext would not benefit from', async () => {
      const { ma, requests } = await createWebSocketServer()
      const transport = createTransport()

      await transport.dial(ma, {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(requests).to.have.lengthOf(1)
      expect(requests[0].headers).to.not.have.property('sec-websocket-extensions')
    })

    it('fails to dial a self-signed tls/ws peer without trusting it', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/tls/ws', {
        https: certificate
      })
      const transport = createTransport()

      await expect(transport.dial(addressOf(listener, WebSocketsSecure), {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })).to.eventually.be.rejected()
        .with.property('name', 'ConnectionFailedError')

      expect(upgrader.outbound).to.be.empty()
    })

    it('fails to dial a self-signed tls/ws peer through libp2p without trusting it', async () => {
      const listener = await createListeningNode('/ip4/127.0.0.1/tcp/0/tls/ws', {
        https: certificate
      })
      const dialer = await createDialingNode()

      await expect(dialer.dial(addressOf(listener, WebSocketsSecure), {
        signal: AbortSignal.timeout(DEADLINE)
      })).to.eventually.be.rejected()

      expect(dialer.getConnections()).to.be.empty()
    })
  })

  describe('failures', () => {
    it('rejects a dial with an aborted signal', async () => {
      const { ma } = await createWebSocketServer()
      const transport = createTransport()

      await expect(transport.dial(ma, {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.abort()
      })).to.eventually.be.rejected()
        .with.property('name', 'AbortError')

      // no socket was opened: the transport tracks every one from creation
      expect(upgrader.outbound).to.be.empty()
      expect(Object.values(socketCountsOf(transport))).to.deep.equal([0, 0, 0])
    })

    it('aborts a dial to a peer that never answers', async () => {
      const server = await silentServer()
      closers.push(async () => { await server.close() })
      const { metrics, increments } = recordingMetrics()
      const transport = createTransport({}, metrics)
      const controller = new AbortController()

      const dial = transport.dial(server.multiaddr.encapsulate('/ws'), {
        upgrader: upgrader.upgrader,
        signal: controller.signal
      })
      // observe the rejection now, the assertion comes later
      dial.catch(() => {})

      await server.connected()

      const start = Date.now()
      controller.abort()

      await expect(dial).to.eventually.be.rejectedWith(AbortError, `Dial to ws://127.0.0.1:${getNetConfig(server.multiaddr).port} was aborted`)
      expect(Date.now() - start).to.be.lessThan(2_000)
      expect(increments.get('libp2p_websockets_dialer_events_total')).to.deep.equal([{ abort: true }])

      // the dialer let go of the socket, the server sees it closed
      await server.allClosed(5_000)
      expect(upgrader.outbound).to.be.empty()
      expect(Object.values(socketCountsOf(transport))).to.deep.equal([0, 0, 0])
    })

    it('rejects a dial to a closed port with ConnectionFailedError', async () => {
      const port = await closedPort()
      const transport = createTransport()

      await expect(transport.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`), {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })).to.eventually.be.rejectedWith(ConnectionFailedError, new RegExp(`^Could not connect to ws://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`))
    })

    it('dials without an abort signal, and leaves no listener on one it was given', async () => {
      const { ma } = await createWebSocketServer()
      const transport = createTransport()
      const signal = AbortSignal.timeout(DEADLINE)

      await transport.dial(ma, { upgrader: upgrader.upgrader } as unknown as DialTransportOptions)
      await transport.dial(ma, { upgrader: upgrader.upgrader, signal })

      expect(upgrader.outbound).to.have.lengthOf(2)
      expect(getEventListeners(signal, 'abort')).to.be.empty()
    })
  })

  describe('metrics', () => {
    it('registers the metrics upstream registers', async () => {
      const { metrics, registered } = recordingMetrics()
      const transport = createTransport({}, metrics)
      const listener = transport.createListener({
        upgrader: upgrader.upgrader
      })

      try {
        expect(registered.get('libp2p_websockets_dialer_events_total')).to.equal('counterGroup')
        expect(registered.get('libp2p_websockets_listener_status_info')).to.equal('metricGroup')
        expect(registered.get('libp2p_websockets_listener_errors_total')).to.equal('metricGroup')
        expect(registered.get('libp2p_websockets_listener_events_total')).to.equal('metricGroup')
        expect(registered.get('libp2p_websockets_inbound_connections_total')).to.equal('metricGroup')
      } finally {
        await listener.close()
      }
    })

    it('counts dialer events', async () => {
      const { metrics, increments } = recordingMetrics()
      const transport = createTransport({}, metrics)
      const { ma } = await createWebSocketServer()
      const port = await closedPort()

      await transport.dial(ma, {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })

      await expect(transport.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`), {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })).to.eventually.be.rejected()

      const events = increments.get('libp2p_websockets_dialer_events_total')
      expect(events).to.deep.include({ connect: true })
      expect(events).to.deep.include({ error: true })
    })
  })
})
