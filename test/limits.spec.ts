import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { stop } from '@libp2p/interface'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { WebSocket } from 'ws'
import { MAX_PAYLOAD } from '../src/constants.ts'
import { echo, echoOnConnection } from '../toolbox/echo.ts'
import { closeCodeOf, frame, OPCODE } from '../toolbox/raw-websocket.ts'
import { closedByServer, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { bareDial } from './fixtures/bare-dialer.ts'
import { maConnOf } from './fixtures/connection-internals.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { hostileWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import { totalOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import { recordSocketOptionCalls } from './fixtures/socket-option-calls.ts'
import type { HandMadeWebSocketServer as HostileWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import type { SocketOptionCalls } from './fixtures/socket-option-calls.ts'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 10_000

describe('limits', function () {
  this.timeout(30_000)

  const nodes: Libp2p[] = []
  const clients: Array<net.Socket | WebSocket> = []
  const restore: Array<() => void> = []
  const servers: HostileWebSocketServer[] = []

  afterEach(async () => {
    restore.splice(0).forEach(fn => { fn() })

    for (const client of clients.splice(0)) {
      if (client instanceof WebSocket) {
        client.terminate()
      } else {
        client.destroy()
      }
    }

    await withDeadline(Promise.all([
      stop(...nodes.splice(0)),
      ...servers.splice(0).map(async server => server.close())
    ]), DEADLINE, 'stopping the nodes and servers')
  })

  failOnProcessErrors()

  async function assertEchoes (connection: Connection, bytes = 32 * 1024): Promise<void> {
    const input = new Uint8Array(randomBytes(bytes))
    const output = await echoOnConnection(connection, input, {
      signal: AbortSignal.timeout(DEADLINE)
    })
    expect(output).to.equalBytes(input)
  }

  async function stalledClients (ma: Multiaddr, count: number): Promise<net.Socket[]> {
    const sockets = await withDeadline(Promise.all(
      Array.from({ length: count }, async () => silentClient(ma))
    ), DEADLINE, `${count} clients connecting`)
    clients.push(...sockets)

    return sockets
  }

  describe('maxInboundHandshakes', () => {
    it('destroys a socket beyond the cap at once and counts it; a real peer connects once the stalled ones time out', async () => {
      const handshakeTimeout = 2_000
      const { listener, metrics, ma } = await listeningNode(nodes, { maxInboundHandshakes: 5, handshakeTimeout })

      const stalled = await stalledClients(ma, 5)
      await until(() => listener.socketCounts().accepted === 5, DEADLINE, 'five sockets handshaking')

      const start = Date.now()
      const [sixth] = await stalledClients(ma, 1)
      await withDeadline(closedByServer(sixth), handshakeTimeout, 'the sixth socket being destroyed')

      // at once, not on the handshake deadline
      expect(Date.now() - start).to.be.below(handshakeTimeout / 2)
      expect(listenerEventCount(metrics, 'handshake_limit')).to.equal(1)
      expect(totalOf(listener.socketCounts())).to.equal(5)

      // a libp2p peer is refused like anyone else while the cap is reached
      const refused = await dialerNode(nodes)
      await expect(refused.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })).to.eventually.be.rejected()
      expect(listenerEventCount(metrics, 'handshake_limit')).to.equal(2)

      await withDeadline(Promise.all(stalled.map(closedByServer)), handshakeTimeout + DEADLINE, 'the stalled sockets timing out')
      expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(5)
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the stalled sockets')

      const dialer = await dialerNode(nodes)
      const connection = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await assertEchoes(connection)
      expect(listener.socketCounts().open).to.equal(1)
    })

    it('does not count upgraded connections against the cap', async () => {
      const { listener, ma } = await listeningNode(nodes, { maxInboundHandshakes: 2 })

      const dialers = await Promise.all([dialerNode(nodes), dialerNode(nodes), dialerNode(nodes), dialerNode(nodes)])
      const connections = []

      for (const dialer of dialers) {
        connections.push(await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) }))
      }

      await until(() => listener.socketCounts().open === 4, DEADLINE, 'four open connections')
      await Promise.all(connections.map(async connection => { await assertEchoes(connection) }))
    })
  })

  describe('maxConnections', () => {
    it('destroys sockets beyond the limit at once and counts them as drop', async () => {
      const handshakeTimeout = 5_000
      const { listener, metrics, ma } = await listeningNode(nodes, { maxConnections: 3, handshakeTimeout })

      const held = await stalledClients(ma, 3)
      await until(() => listener.socketCounts().accepted === 3, DEADLINE, 'three sockets accepted')

      const start = Date.now()
      const extra = await stalledClients(ma, 2)
      await withDeadline(Promise.all(extra.map(closedByServer)), handshakeTimeout, 'the extra sockets being destroyed')

      expect(Date.now() - start).to.be.below(handshakeTimeout / 2)
      await until(() => listenerEventCount(metrics, 'drop') === 2, DEADLINE, 'two drops counted')
      expect(totalOf(listener.socketCounts())).to.equal(3)
      expect(held.filter(socket => socket.destroyed)).to.be.empty()

      // room again once one goes
      held[0].destroy()
      await until(() => totalOf(listener.socketCounts()) === 2, DEADLINE, 'the listener releasing a socket')
      const dialer = await dialerNode(nodes)
      const connection = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await assertEchoes(connection)
    })
  })

  describe('backlog', () => {
    it('listens with the backlog given', async () => {
      const calls: unknown[][] = []
      const listen = net.Server.prototype.listen
      net.Server.prototype.listen = function (this: net.Server, ...args: any[]) {
        calls.push(args)
        return listen.apply(this, args as any)
      } as typeof listen
      restore.push(() => { net.Server.prototype.listen = listen })

      const { ma } = await listeningNode(nodes, { backlog: 7 })

      expect(calls.some(([options]) => (options as net.ListenOptions)?.backlog === 7)).to.be.true()

      const dialer = await dialerNode(nodes)
      const connection = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await assertEchoes(connection)
    })
  })

  describe('maxPayload', () => {
    const payloadLimits = [{
      name: 'maxPayload',
      init: { maxPayload: 64 * 1024 },
      limit: 64 * 1024
    }, {
      name: 'the default maxPayload',
      init: {},
      limit: MAX_PAYLOAD
    }]

    for (const { name, init, limit } of payloadLimits) {
      it(`closes an inbound connection that sends a message larger than ${name} with 1009`, async () => {
        const { listener, ma } = await listeningNode(nodes, init)

        const client = await upgradedClient(ma)
        clients.push(client)
        await until(() => listener.socketCounts().upgrading === 1, DEADLINE, 'the socket entering the libp2p upgrade')

        const closed = withDeadline(new Promise<number>(resolve => {
          client.once('close', (code: number) => { resolve(code) })
        }), DEADLINE, 'the server closing the connection')
        client.send(new Uint8Array(limit + 1))

        expect(await closed).to.equal(1009)
        await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
      })

      it(`accepts an inbound message of exactly ${name}`, async () => {
        const { listener, ma } = await listeningNode(nodes, init)

        const client = await upgradedClient(ma)
        clients.push(client)
        await until(() => listener.socketCounts().upgrading === 1, DEADLINE, 'the socket entering the libp2p upgrade')

        let closeCode: number | undefined
        client.once('close', (code: number) => { closeCode = code })

        // the payload is not a libp2p handshake, so libp2p resets the
        // connection: without a 1009 close frame
        client.send(new Uint8Array(limit))
        await withDeadline(closedByServer(client), DEADLINE, 'libp2p rejecting the handshake')
        expect(closeCode).to.not.equal(1009)
      })

      it(`closes an outbound connection whose listener announces a message larger than ${name} with 1009`, async () => {
        // the frame header alone: a dialer that accepted the length would
        // wait for the payload, and never answer
        const server = await hostileWebSocketServer(frame({ opcode: OPCODE.binary, masked: false, length: limit + 1 }))
        servers.push(server)

        // hands the bare connection back, so nothing but the transport can close it
        const transport = await bareDial(server.multiaddr, init, DEADLINE)

        await server.clientEnded(DEADLINE)
        expect(closeCodeOf(server.received())).to.equal(1009)
        await until(() => totalOf(transport.socketCounts()) === 0, DEADLINE, 'the dialer releasing the socket')
      })
    }

    it('is larger by default than any message libp2p with noise and yamux sends', async () => {
      // the size of every message either side receives (our data frames do
      // not go through `send()`)
      const sizes: number[] = []
      const emit = WebSocket.prototype.emit
      WebSocket.prototype.emit = function (this: WebSocket, event: string | symbol, ...args: any[]) {
        if (event === 'message') {
          sizes.push(args[0]?.byteLength ?? 0)
        }

        return emit.apply(this, [event, ...args])
      }
      restore.push(() => { WebSocket.prototype.emit = emit })

      const { ma } = await listeningNode(nodes)
      const dialer = await dialerNode(nodes)

      const input = new Uint8Array(randomBytes(2 * 1024 * 1024 + 17))
      const output = await echo(dialer, ma, input, {
        signal: AbortSignal.timeout(DEADLINE * 2)
      })
      expect(output).to.equalBytes(input)

      const largest = Math.max(...sizes)
      // full noise frames went both ways, and none came near the limit
      expect(largest).to.be.at.least(60_000)
      expect(largest).to.be.below(MAX_PAYLOAD)
    })
  })

  describe('inactivity timeouts', () => {
    const inactivityTimeout = 500

    /**
     * Exchange a little data every `inactivityTimeout / 2` ms for twice the
     * timeout, ending with an exchange: a connection with traffic must not be
     * closed. Returns when the last exchange started: the socket was active
     * after that
     */
    async function keepBusy (connection: Connection): Promise<number> {
      const end = Date.now() + 2 * inactivityTimeout
      let lastExchange = Date.now()

      while (Date.now() < end) {
        await new Promise(resolve => setTimeout(resolve, inactivityTimeout / 2))
        lastExchange = Date.now()
        await assertEchoes(connection, 64)
      }

      expect(connection.status).to.equal('open')

      return lastExchange
    }

    it('inboundSocketInactivityTimeout closes an idle inbound connection on the listener side', async () => {
      const { node, ma } = await listeningNode(nodes, { inboundSocketInactivityTimeout: inactivityTimeout })
      const dialer = await dialerNode(nodes)

      const outbound = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await until(() => node.getConnections().length === 1, DEADLINE, 'the listener seeing the connection')
      const inbound = node.getConnections()[0]

      const inboundClosed = pEvent<'close', any>(maConnOf(inbound), 'close', { signal: AbortSignal.timeout(DEADLINE) })
      const outboundClosed = pEvent<'close', any>(maConnOf(outbound), 'close', { signal: AbortSignal.timeout(DEADLINE) })

      const busyUntil = await keepBusy(outbound)

      const evt = await inboundClosed
      expect(evt.error).to.have.property('name', 'TimeoutError')
      expect(Date.now() - busyUntil).to.be.at.least(inactivityTimeout - 5)

      // the dialer, whose own timeout is the default, was closed by the listener
      const remote = await outboundClosed
      expect(remote.error?.name).to.not.equal('TimeoutError')
      await until(() => dialer.getConnections().length === 0, DEADLINE, 'the dialer dropping the connection')
    })

    it('outboundSocketInactivityTimeout closes an idle outbound connection on the dialer side', async () => {
      const { node, ma } = await listeningNode(nodes)
      const dialer = await dialerNode(nodes, { outboundSocketInactivityTimeout: inactivityTimeout })

      const outbound = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await until(() => node.getConnections().length === 1, DEADLINE, 'the listener seeing the connection')
      const inbound = node.getConnections()[0]

      const outboundClosed = pEvent<'close', any>(maConnOf(outbound), 'close', { signal: AbortSignal.timeout(DEADLINE) })
      const inboundClosed = pEvent<'close', any>(maConnOf(inbound), 'close', { signal: AbortSignal.timeout(DEADLINE) })

      const busyUntil = await keepBusy(outbound)

      const evt = await outboundClosed
      expect(evt.error).to.have.property('name', 'TimeoutError')
      expect(Date.now() - busyUntil).to.be.at.least(inactivityTimeout - 5)

      const remote = await inboundClosed
      expect(remote.error?.name).to.not.equal('TimeoutError')
      await until(() => node.getConnections().length === 0, DEADLINE, 'the listener dropping the connection')
    })
  })

  describe('socket options', () => {
    function record (): SocketOptionCalls {
      const recorded = recordSocketOptionCalls()
      restore.push(() => { recorded.restore() })

      return recorded
    }

    for (const secure of [false, true]) {
      it(`applies dialOpts and listenOpts to ${secure ? 'wss' : 'ws'} sockets`, async () => {
        const recorded = record()
        const { port, ma } = await listeningNode(nodes, {
          listenOpts: { noDelay: false, keepAlive: false }
        }, secure)
        const dialer = await dialerNode(nodes, {
          dialOpts: { noDelay: false, keepAlive: true, keepAliveInitialDelay: 9_000 }
        })

        const connection = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
        await assertEchoes(connection)

        const inbound = (call: { localPort?: number }): boolean => call.localPort === port
        const outbound = (call: { remotePort?: number }): boolean => call.remotePort === port

        // whatever `ws` or Node.js did before, our options come last
        expect(recorded.of('setNoDelay', inbound).at(-1)?.args).to.deep.equal([false])
        expect(recorded.of('setKeepAlive', inbound).at(-1)?.args[0]).to.equal(false)
        expect(recorded.of('setNoDelay', outbound).at(-1)?.args).to.deep.equal([false])
        expect(recorded.of('setKeepAlive', outbound).at(-1)?.args).to.deep.equal([true, 9_000])
      })
    }

    it('enables noDelay and keepAlive by default', async () => {
      const recorded = record()
      const { port, ma } = await listeningNode(nodes)
      const dialer = await dialerNode(nodes)

      const connection = await dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
      await assertEchoes(connection)

      const inbound = (call: { localPort?: number }): boolean => call.localPort === port
      const outbound = (call: { remotePort?: number }): boolean => call.remotePort === port

      expect(recorded.of('setNoDelay', inbound).at(-1)?.args).to.deep.equal([true])
      expect(recorded.of('setKeepAlive', inbound).at(-1)?.args[0]).to.equal(true)
      expect(recorded.of('setNoDelay', outbound).at(-1)?.args).to.deep.equal([true])
      expect(recorded.of('setKeepAlive', outbound).at(-1)?.args[0]).to.equal(true)
    })
  })
})
