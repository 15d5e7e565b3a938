import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { stop } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { getNetConfig } from '@libp2p/utils'
import { webSockets as upstreamWebSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { pEvent } from 'p-event'
import { webSockets } from '../src/index.ts'
import { createListener as createBrowserListener } from '../src/listener.browser.ts'
import { echo } from '../toolbox/echo.ts'
import { rawWebSocket } from '../toolbox/raw-websocket.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { upgradedClient } from '../toolbox/stalled-clients.ts'
import { certificate } from './fixtures/certificate.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { totalOf } from './fixtures/internals.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import { recordingUpgrader } from './fixtures/recording-upgrader.ts'
import type { TrackingListener, TrackingTransport } from './fixtures/internals.ts'
import type { RecordingUpgrader } from './fixtures/recording-upgrader.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { Libp2p, Libp2pEvents, Listener, MultiaddrConnection, TLSCertificate, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ClientOptions, WebSocket } from 'ws'

/**
 * What the tests of `@libp2p/websockets` check, and the listener and
 * connection lifecycle tests of `@libp2p/tcp`, checked against this package in
 * our own words. Each `describe` names the upstream test file it follows.
 * Where we differ on purpose (the error of an aborted dial, trusting a
 * self-signed certificate) the README says so and this file tests our
 * behaviour, not upstream's
 */

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 10_000

/**
 * A peer id to put in addresses; nothing dials it
 */
const PEER_ID = '12D3KooWJQ78FDp1BhxCeNcwVwcSkhCxDQR83hpNS5ZhNDb67Za7'

// the PEM files and package.json stay where they are when the tests run from
// dist/test/
const here = path.dirname(fileURLToPath(import.meta.url))
const root = here.endsWith(`${path.sep}dist${path.sep}test`) ? path.resolve(here, '../..') : path.resolve(here, '..')

/**
 * A loopback port nothing listens on right now, to listen on a given port
 */
async function freePort (host: string): Promise<number> {
  const server = net.createServer()
  server.listen(0, host)
  await pEvent(server, 'listening', {
    signal: AbortSignal.timeout(DEADLINE)
  })
  const { port } = server.address() as net.AddressInfo

  await new Promise<void>(resolve => {
    server.close(() => { resolve() })
  })

  return port
}

async function closeServer (server: net.Server): Promise<void> {
  await new Promise<void>(resolve => {
    server.close(() => { resolve() })
  })
}

describe('parity with the tests of @libp2p/websockets and @libp2p/tcp', function () {
  this.timeout(60_000)

  const listeners: Listener[] = []
  const nodes: Libp2p[] = []
  const cleanups: Array<() => void | Promise<void>> = []
  let upgrader: RecordingUpgrader
  let events: TypedEventEmitter<Libp2pEvents>

  beforeEach(() => {
    upgrader = recordingUpgrader()
    events = new TypedEventEmitter<Libp2pEvents>()
  })

  afterEach(async () => {
    upgrader.abortAll()
    await Promise.all(cleanups.splice(0).map(async cleanup => cleanup()))
    await withDeadline(Promise.all(listeners.splice(0).map(async listener => listener.close())), DEADLINE, 'closing the listeners')
    await withDeadline(stop(...nodes.splice(0)), DEADLINE, 'stopping the nodes')
  })

  failOnProcessErrors()

  function createTransport (init?: WebSocketsInit): TrackingTransport {
    return webSockets(init)({
      logger: defaultLogger(),
      events
    }) as TrackingTransport
  }

  function createListener (transport: Transport, listenUpgrader: Upgrader = upgrader.upgrader): TrackingListener {
    const listener = transport.createListener({
      upgrader: listenUpgrader
    }) as TrackingListener
    listeners.push(listener)

    return listener
  }

  async function listening (ma: Multiaddr | string, init?: WebSocketsInit): Promise<{ transport: TrackingTransport, listener: TrackingListener }> {
    const transport = createTransport(init)
    const listener = createListener(transport)
    await listener.listen(typeof ma === 'string' ? multiaddr(ma) : ma)

    return { transport, listener }
  }

  /**
   * Hand the listeners a certificate the way libp2p's auto-tls service does
   */
  function provision (detail: TLSCertificate): void {
    events.safeDispatchEvent<TLSCertificate>('certificate:provision', { detail })
  }

  /**
   * Dial `ma` with the transport and wait until the listener has handed the
   * connection to the upgrader
   */
  async function assertDialable (transport: Transport, ma: Multiaddr): Promise<MultiaddrConnection> {
    const inboundBefore = upgrader.inbound.length
    const connection = await transport.dial(ma, {
      upgrader: upgrader.upgrader,
      signal: AbortSignal.timeout(DEADLINE)
    })

    expect(connection.remoteAddr.toString()).to.equal(ma.toString())
    await until(() => upgrader.inbound.length === inboundBefore + 1, DEADLINE, 'the listener upgrading the connection')

    return connection as unknown as MultiaddrConnection
  }

  describe('listen (upstream test/node.ts)', () => {
    it('has no addresses while listen() has not resolved', async () => {
      const listener = createListener(createTransport())

      const listen = listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      expect(listener.getAddrs()).to.be.empty()

      await listen
      expect(listener.getAddrs()).to.have.lengthOf(1)
    })

    it('rejects with EADDRINUSE on a port another server holds, then closes', async () => {
      const server = http.createServer()
      server.listen(0, '127.0.0.1')
      await pEvent(server, 'listening', {
        signal: AbortSignal.timeout(DEADLINE)
      })
      cleanups.push(async () => { await closeServer(server) })
      const { port } = server.address() as net.AddressInfo
      const listener = createListener(createTransport())
      let closeEvents = 0
      listener.addEventListener('close', () => { closeEvents++ })

      await expect(listener.listen(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`)))
        .to.eventually.be.rejectedWith(/listen EADDRINUSE/)
        .with.property('code', 'EADDRINUSE')
      expect(listener.getAddrs()).to.be.empty()

      await withDeadline(listener.close(), 2_000, 'close() after a failed listen()')
      expect(closeEvents).to.equal(1)
    })

    for (const host of ['127.0.0.1', '::1']) {
      const family = host.includes(':') ? 'ip6' : 'ip4'

      it(`listens on a given ${family} port with a peer id in the address, which getAddrs omits`, async () => {
        const port = await freePort(host)
        const { transport, listener } = await listening(`/${family}/${host}/tcp/${port}/ws/ipfs/${PEER_ID}`)

        expect(listener.getAddrs().map(ma => ma.toString())).to.deep.equal([
          `/${family}/${host}/tcp/${port}/ws`
        ])

        await assertDialable(transport, listener.getAddrs()[0])
      })
    }

    it('emits listening and close on ::1', async () => {
      const listener = createListener(createTransport())
      const listeningEvent = pEvent(listener, 'listening', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      await listener.listen(multiaddr('/ip6/::1/tcp/0/ws'))
      await listeningEvent

      const closeEvent = pEvent(listener, 'close', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      await listener.close()
      await closeEvent
      expect(listener.getAddrs()).to.be.empty()
    })

    // upstream listens on 0.0.0.0 with a given port and a peer id, and
    // @libp2p/tcp on ::; only the loopback address among the results is dialed
    for (const { wildcard, loopback } of [{ wildcard: '/ip4/0.0.0.0', loopback: '/ip4/127.0.0.1' }, { wildcard: '/ip6/::', loopback: '/ip6/::1' }]) {
      it(`expands ${wildcard} with a given port and a peer id to interface addresses on that port, without the peer id`, async () => {
        const port = await freePort(wildcard.startsWith('/ip6') ? '::' : '0.0.0.0')
        const { transport, listener } = await listening(`${wildcard}/tcp/${port}/ws/p2p/${PEER_ID}`)
        const addrs = listener.getAddrs()

        expect(addrs.map(ma => ma.toString())).to.include(`${loopback}/tcp/${port}/ws`)

        for (const ma of addrs) {
          const config = getNetConfig(ma)

          expect(config.host).to.not.be.oneOf(['0.0.0.0', '::'])
          expect(config.port).to.equal(port)
          expect(WebSockets.exactMatch(ma)).to.be.true()
          expect(ma.toString()).to.not.include('/p2p/')
        }

        await assertDialable(transport, multiaddr(`${loopback}/tcp/${port}/ws`))
      })
    }

    it('listens on a given port over /tls/ws and reports exactly that address', async () => {
      const port = await freePort('127.0.0.1')
      const ma = multiaddr(`/ip4/127.0.0.1/tcp/${port}/tls/ws`)
      const { listener } = await listening(ma, {
        https: certificate
      })

      const addrs = listener.getAddrs()
      expect(addrs).to.have.lengthOf(1)
      expect(addrs[0].equals(ma)).to.be.true()

      const transport = createTransport({
        websocket: {
          ca: certificate.cert
        }
      })
      await assertDialable(transport, ma)
    })

    it('reports a /wss listen address as /tls/ws, as upstream does', async () => {
      const port = await freePort('127.0.0.1')
      const { listener } = await listening(`/ip4/127.0.0.1/tcp/${port}/wss`, {
        https: certificate
      })
      const ours = listener.getAddrs().map(ma => ma.toString())
      await listener.close()

      const upstream = upstreamWebSockets({ https: certificate })({
        logger: defaultLogger(),
        events
      }).createListener({
        upgrader: upgrader.upgrader
      })
      listeners.push(upstream)
      await upstream.listen(multiaddr(`/ip4/127.0.0.1/tcp/${port}/wss`))

      expect(ours).to.deep.equal([`/ip4/127.0.0.1/tcp/${port}/tls/ws`])
      expect(upstream.getAddrs().map(ma => ma.toString())).to.deep.equal(ours)
    })
  })

  describe('dial (upstream test/node.ts)', () => {
    for (const host of ['/ip4/127.0.0.1', '/ip6/::1']) {
      it(`dials the port-0 listener's ${host} address with a peer id and keeps the peer id in the remote address`, async () => {
        const { transport, listener } = await listening(`${host}/tcp/0/ws`)
        const ma = listener.getAddrs()[0].encapsulate(`/p2p/${PEER_ID}`)

        expect(getNetConfig(ma).port).to.not.equal(0)

        const connection = await assertDialable(transport, ma)
        expect(connection.remoteAddr.getComponents().find(c => c.name === 'p2p')?.value).to.equal(PEER_ID)
      })
    }

    // upstream rejects with ConnectionFailedError here; we reject with
    // AbortError, as the compliance suite expects of a dial aborted earlier
    it('rejects with AbortError a dial aborted in the tick it started, and lets go of its socket', async () => {
      const server = await silentServer()
      cleanups.push(async () => { await server.close() })
      const transport = createTransport()
      const controller = new AbortController()

      const dial = transport.dial(server.multiaddr.encapsulate('/ws'), {
        upgrader: upgrader.upgrader,
        signal: controller.signal
      })
      controller.abort()

      await expect(dial).to.eventually.be.rejected()
        .with.property('name', 'AbortError')
      await until(() => totalOf(transport.socketCounts()) === 0, DEADLINE, 'the dialer letting go of the socket')
      await server.allClosed(DEADLINE)
      expect(upgrader.outbound).to.be.empty()
    })
  })

  describe('auto-tls (upstream test/node.ts)', () => {
    for (const host of ['/ip4/127.0.0.1', '/ip6/::1']) {
      it(`adds ${host} /tls/ws after /ws, on the same host and port, once a certificate is provisioned`, async () => {
        const { listener } = await listening(`${host}/tcp/0/ws`)
        const [insecure] = listener.getAddrs()
        const port = getNetConfig(insecure).port
        const listeningEvent = pEvent(listener, 'listening', {
          signal: AbortSignal.timeout(DEADLINE)
        })

        provision(certificate)
        await listeningEvent

        const addrs = listener.getAddrs()
        expect(addrs.map(ma => ma.toString())).to.deep.equal([
          `${host}/tcp/${port}/ws`,
          `${host}/tcp/${port}/tls/ws`
        ])
        expect(WebSockets.exactMatch(addrs[0])).to.be.true()
        expect(WebSocketsSecure.exactMatch(addrs[1])).to.be.true()

        // Node.js 22 does not match `::1` against the certificate's IPv6
        // entry (it compares it with `0:0:0:0:0:0:0:1` as text), so the
        // name is checked instead: what is under test is the address
        await assertDialable(createTransport({ websocket: { ca: certificate.cert, servername: 'localhost' } as ClientOptions }), addrs[1])
      })
    }
  })

  describe('address filters (upstream test/node.ts until the `filter` option was removed)', () => {
    function kept (id: string): string[] {
      return [
        '/dnsaddr/example.com/ws',
        '/dnsaddr/example.com/tcp/80/ws',
        '/dnsaddr/example.com/tcp/80/wss',
        `/dnsaddr/example.com/tcp/80/ws/ipfs/${id}`,
        `/dnsaddr/example.com/tcp/443/wss/ipfs/${id}`,
        '/dns4/example.com/tcp/80/ws',
        '/dns4/example.com/tcp/443/wss',
        '/dns6/example.com/tcp/80/ws',
        '/dns6/example.com/tcp/443/wss',
        `/dns6/example.com/tcp/80/ws/ipfs/${id}`,
        `/dns6/example.com/tcp/443/wss/ipfs/${id}`,
        '/dns6/example.com/ws',
        '/ip4/127.0.0.1/tcp/80/ws',
        '/ip4/127.0.0.1/tcp/443/wss',
        `/ip4/127.0.0.1/tcp/80/ws/ipfs/${id}`,
        `/ip4/127.0.0.1/tcp/80/wss/ipfs/${id}`,
        '/ip6/::1/tcp/80/ws',
        '/ip6/::1/tcp/443/wss',
        `/ip6/::1/tcp/80/ws/ipfs/${id}`,
        `/ip6/::1/tcp/443/wss/ipfs/${id}`
      ]
    }

    function dropped (id: string): string[] {
      return [
        '/ip4/127.0.0.1/tcp/9090',
        '/ip4/127.0.0.1/udp/9090',
        '/ip6/::1/tcp/80',
        '/dnsaddr/example.com/tcp/80',
        `/ip4/127.0.0.1/tcp/9090/ws/ipfs/${id}/p2p-circuit/ipfs/${id}`
      ]
    }

    for (const filter of ['dialFilter', 'listenFilter'] as const) {
      it(`${filter} keeps each address upstream kept, /ipfs/ peer ids and /wss included`, () => {
        const transport = createTransport()

        for (const addr of kept(PEER_ID)) {
          const ma = multiaddr(addr)

          expect(transport[filter]([ma]), addr).to.deep.equal([ma])
        }
      })

      it(`${filter} drops each address upstream dropped, /p2p-circuit included`, () => {
        const transport = createTransport()

        for (const addr of dropped(PEER_ID)) {
          expect(transport[filter]([multiaddr(addr)]), addr).to.be.empty()
        }
      })

      it(`${filter} keeps the WebSocket addresses of a mixed list in order, as upstream's does`, () => {
        const transport = createTransport()
        const upstream = upstreamWebSockets()({ logger: defaultLogger(), events: new TypedEventEmitter<Libp2pEvents>() })
        const [first, tcp, udp, noPort, circuit] = [
          `/dns6/example.com/tcp/80/ws/ipfs/${PEER_ID}`,
          '/ip4/127.0.0.1/tcp/9090',
          '/ip4/127.0.0.1/udp/9090',
          '/dns6/example.com/ws',
          `/ip4/127.0.0.1/tcp/9090/ws/ipfs/${PEER_ID}/p2p-circuit/ipfs/${PEER_ID}`
        ].map(addr => multiaddr(addr))
        const mixed = [first, tcp, udp, noPort, circuit]

        expect(transport[filter](mixed)).to.deep.equal([first, noPort])

        const all = [...kept(PEER_ID), ...dropped(PEER_ID)].map(addr => multiaddr(addr))
        expect(transport[filter](all)).to.deep.equal(upstream[filter](all))
      })
    }
  })

  describe('listener lifecycle (upstream transport-tcp test/listen-dial.spec.ts)', () => {
    it('close() resolves while an inbound upgrade neither settles nor heeds its signal, and aborts that signal', async () => {
      const started = Promise.withResolvers<AbortSignal | undefined>()
      const stubborn: Partial<Upgrader> = {
        upgradeInbound: async (_maConn, options) => {
          started.resolve(options?.signal)

          return new Promise<void>(() => {})
        }
      }
      const transport = createTransport()
      const listener = createListener(transport, stubborn as Upgrader)
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      transport.dial(listener.getAddrs()[0], {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      }).catch(() => {})
      const signal = await withDeadline(started.promise, DEADLINE, 'the inbound upgrade starting')
      expect(signal?.aborted).to.be.false()

      await withDeadline(listener.close(), 2_000, 'close()')

      expect(signal?.aborted).to.be.true()
      expect(totalOf(listener.socketCounts())).to.equal(0)
    })
  })

  describe('connection lifecycle (upstream transport-tcp test/socket-to-conn.spec.ts and connection.spec.ts)', () => {
    /**
     * Our listener on loopback, and the address it listens on
     */
    async function inbound (): Promise<{ listener: TrackingListener, ma: Multiaddr }> {
      const { listener } = await listening('/ip4/127.0.0.1/tcp/0/ws')

      return { listener, ma: listener.getAddrs()[0] }
    }

    /**
     * Our listener with a client that completed the WebSocket upgrade, and
     * the inbound connection the listener made of it
     */
    async function inboundWithClient (): Promise<{ listener: TrackingListener, maConn: MultiaddrConnection, client: WebSocket }> {
      const { listener, ma } = await inbound()
      const client = await upgradedClient(ma)
      cleanups.push(() => { client.terminate() })
      await until(() => upgrader.inbound.length === 1, DEADLINE, 'the listener upgrading the connection')

      return { listener, maConn: upgrader.inbound[0], client }
    }

    it('ends as closed, and lets go of the socket, when the peer closes', async () => {
      const { listener, maConn, client } = await inboundWithClient()
      const closed = pEvent(maConn, 'close')

      client.close(1000)

      const evt: any = await withDeadline(closed, DEADLINE, 'the connection closing')
      expect(evt.error).to.be.undefined()
      expect(maConn.status).to.equal('closed')
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener letting go of the socket')
    })

    it('ends as reset, and lets go of the socket, when the peer drops the connection', async () => {
      const { listener, maConn, client } = await inboundWithClient()
      const closed = pEvent(maConn, 'close')

      client.terminate()

      const evt: any = await withDeadline(closed, DEADLINE, 'the connection closing')
      expect(evt.error).to.have.property('name', 'StreamResetError')
      expect(maConn.status).to.equal('reset')
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener letting go of the socket')
    })

    it('ends as reset, and lets go of the socket, when the peer half-closes the TCP connection', async () => {
      const { listener, ma } = await inbound()
      const raw = await rawWebSocket(ma, { allowHalfOpen: true })
      cleanups.push(() => { raw.client.socket.destroy() })
      await until(() => upgrader.inbound.length === 1, DEADLINE, 'the listener upgrading the connection')
      const maConn = upgrader.inbound[0]
      const closed = pEvent(maConn, 'close')

      raw.client.socket.end()

      // a peer gone without a close frame has reset the connection, as one
      // that drops it does
      const evt: any = await withDeadline(closed, DEADLINE, 'the connection closing')
      expect(evt.error).to.have.property('name', 'StreamResetError')
      expect(maConn.status).to.equal('reset')
      await raw.client.waitFor(client => client.ended, DEADLINE, 'the listener ending its side')
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener letting go of the socket')
    })

    it('resolves three concurrent close() calls with one closing handshake', async () => {
      const { listener, maConn, client } = await inboundWithClient()
      const codes: number[] = []
      const clientClosed = new Promise<void>(resolve => {
        client.on('close', (code: number) => {
          codes.push(code)
          resolve()
        })
      })

      await withDeadline(Promise.all([maConn.close(), maConn.close(), maConn.close()]), 2_000, 'three concurrent close() calls')

      expect(maConn.status).to.equal('closed')
      await withDeadline(clientClosed, DEADLINE, 'the peer seeing the close')
      expect(codes).to.deep.equal([1000])
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener letting go of the socket')
    })

    it('terminates the socket when aborted while the peer keeps sending', async () => {
      const { listener, maConn, client } = await inboundWithClient()
      const clientClosed = new Promise<number>(resolve => {
        client.once('close', (code: number) => { resolve(code) })
      })
      const firstMessage = pEvent(maConn, 'message')
      const sending = setInterval(() => {
        client.send(randomBytes(1024))
      }, 5)
      cleanups.push(() => { clearInterval(sending) })

      await withDeadline(firstMessage, DEADLINE, 'data arriving')
      maConn.abort(new Error('Not interested'))

      // 1006: the connection dropped with no close frame
      expect(await withDeadline(clientClosed, DEADLINE, 'the peer seeing the socket close')).to.equal(1006)
      expect(maConn.status).to.equal('aborted')
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener letting go of the socket')
    })
  })

  describe('interface compliance suite, as of 7.0.29 (random data)', () => {
    for (const secure of [false, true]) {
      it(`echoes 10 MiB of random bytes over ${secure ? '/tls/ws' : '/ws'}`, async () => {
        const { ma } = await listeningNode(nodes, {}, secure)
        const dialer = await dialerNode(nodes)
        const input = randomBytes(10 * 1024 * 1024)

        const output = await echo(dialer, ma, input, {
          signal: AbortSignal.timeout(30_000)
        })

        expect(output.byteLength).to.equal(input.byteLength)
        // equalBytes would print 10 MiB on failure
        expect(input.equals(output), 'the bytes echoed differ from those sent').to.be.true()
      })
    }
  })

  describe('in browsers (upstream test/browser.ts)', () => {
    it('refuses to create a listener', () => {
      expect(() => createBrowserListener()).to.throw()
        .with.property('name', 'UnsupportedOperationError')
    })

    it('is what bundlers use in place of the Node.js listener', () => {
      const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

      expect(manifest.browser).to.have.property('./dist/src/listener.js', './dist/src/listener.browser.js')
    })
  })
})
