import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { stop } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { WebSocket } from 'ws'
import { echoOnConnection } from '../toolbox/echo.ts'
import { HOLD_PROTOCOL } from '../toolbox/hold.ts'
import { rawClient } from '../toolbox/raw-client.ts'
import { closeCodeOf, closePayload, frame, OPCODE, rawWebSocket, responseHeadLength, upgradeRequest } from '../toolbox/raw-websocket.ts'
import { startRemoteNode } from '../toolbox/remote-node.ts'
import { closedByServer, halfHttpClient, halfTlsClient, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { bareDial } from './fixtures/bare-dialer.ts'
import { bareListener, LOOPBACK_WS } from './fixtures/bare-listener.ts'
import { maConnOf } from './fixtures/connection-internals.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { hostileWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import { totalOf, transportOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import { slowlorisClient } from './fixtures/slowloris-client.ts'
import type { HandMadeWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import type { TrackingListener } from './fixtures/internals.ts'
import type { RawClient } from '../toolbox/raw-client.ts'
import type { RemoteNode } from '../toolbox/remote-node.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 10_000

/**
 * Small enough that the tests do not wait long, large enough that a real peer
 * on a busy machine completes its WebSocket upgrade well within it
 */
const HANDSHAKE_TIMEOUT = 300

/**
 * How soon a peer that broke the protocol is dropped once our close frame is
 * out: a few event loop turns, with room for a busy machine
 */
const DROP_BOUND = 1_000

/**
 * How soon the socket of a request we answered with an error ends: well below
 * Node.js's HTTP keep-alive timeout (5 s), which would end it anyway
 */
const ANSWER_CLOSE_BOUND = 2_000

describe('hostile and broken peers', function () {
  this.timeout(30_000)

  const nodes: Libp2p[] = []
  let listeners: TrackingListener[]
  const clients: Array<net.Socket | WebSocket> = []
  const servers: HandMadeWebSocketServer[] = []
  let peer: RemoteNode | undefined

  beforeEach(() => {
    listeners = []
    peer = undefined
  })

  afterEach(async () => {
    for (const client of clients.splice(0)) {
      if (client instanceof WebSocket) {
        client.terminate()
      } else {
        client.destroy()
      }
    }

    peer?.child.kill()
    await withDeadline(Promise.all([
      ...servers.splice(0).map(async server => server.close()),
      ...listeners.map(async listener => listener.close()),
      stop(...nodes.splice(0))
    ]), DEADLINE, 'cleaning up')
  })

  failOnProcessErrors()

  async function track (client: RawClient | Promise<RawClient>): Promise<RawClient> {
    const raw = await client
    clients.push(raw.socket)

    return raw
  }

  async function assertEchoes (connection: Connection): Promise<void> {
    const input = new Uint8Array(randomBytes(32 * 1024))
    const output = await echoOnConnection(connection, input, {
      signal: AbortSignal.timeout(DEADLINE)
    })
    expect(output).to.equalBytes(input)
  }

  describe('handshake deadline', () => {
    const stalled = [{
      name: 'connects and sends nothing',
      secure: false,
      client: async (ma: Multiaddr) => silentClient(ma)
    }, {
      name: 'sends its HTTP headers one byte every 100 ms',
      secure: false,
      client: async (ma: Multiaddr) => (await slowlorisClient(ma, 100)).socket
    }, {
      name: 'stalls in its TLS ClientHello',
      secure: true,
      client: async (ma: Multiaddr) => halfTlsClient(ma)
    }]

    for (const stage of stalled) {
      it(`destroys and counts a client that ${stage.name} after handshakeTimeout, while a real peer connecting meanwhile stays connected`, async () => {
        const { node, listener, metrics, ma } = await listeningNode(nodes, { handshakeTimeout: HANDSHAKE_TIMEOUT }, stage.secure)
        const dialer = await dialerNode(nodes)

        const start = Date.now()
        const [client, connection] = await withDeadline(Promise.all([
          stage.client(ma),
          dialer.dial(ma, { signal: AbortSignal.timeout(DEADLINE) })
        ]), DEADLINE, 'the stalled client connecting and the real peer dialing')
        clients.push(client)

        await withDeadline(closedByServer(client), HANDSHAKE_TIMEOUT + 5_000, 'the stalled client being destroyed')
        const elapsed = Date.now() - start

        // timers may fire a millisecond early
        expect(elapsed).to.be.at.least(HANDSHAKE_TIMEOUT - 5)
        expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(1)

        // a client accepted after the real peer's socket: once its deadline
        // has passed, so has the real peer's
        const later = await silentClient(ma)
        clients.push(later)
        await withDeadline(closedByServer(later), HANDSHAKE_TIMEOUT + 5_000, 'a later stalled client being destroyed')
        expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(2)

        // the listener releases a socket on its 'close' event, a moment after
        // the client saw it close
        await until(() => totalOf(listener.socketCounts()) === 1, DEADLINE, 'the listener releasing the stalled sockets')
        expect(listener.socketCounts()).to.deep.include({ open: 1 })
        expect(connection.status).to.equal('open')
        expect(node.getConnections()).to.have.lengthOf(1)
        await assertEchoes(connection)
      })
    }

    it('counts a slowloris client that was still sending when it was destroyed', async () => {
      const { listener, metrics, ma } = await listeningNode(nodes, { handshakeTimeout: HANDSHAKE_TIMEOUT })
      const client = await slowlorisClient(ma, 20)
      clients.push(client.socket)

      await withDeadline(closedByServer(client.socket), HANDSHAKE_TIMEOUT + 5_000, 'the slowloris client being destroyed')

      // it never went quiet: the deadline is not an idle timeout
      expect(client.sent()).to.be.at.least(5)
      expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(1)
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })
  })

  describe('bad input', () => {
    it('answers a request that is not a WebSocket upgrade with 400 and a short body, then closes the socket', async () => {
      const { listener, metrics, ma } = await listeningNode(nodes)
      const client = await track(rawClient(ma))

      // HTTP/1.1 keeps the connection open unless told otherwise: only the
      // server can end this socket, and it must do so on its answer, not on
      // Node.js's keep-alive timeout (5 s) nor the handshake deadline (10 s)
      client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n')
      await client.waitFor(c => c.ended, ANSWER_CLOSE_BOUND, 'the server ending the socket')

      const headLength = responseHeadLength(client.received)
      const response = client.received.toString('latin1')
      expect(response).to.match(/^HTTP\/1\.1 400 /)
      expect(headLength).to.be.greaterThan(0)
      expect(response.slice(0, headLength)).to.match(/\r\nConnection: close\r\n/i)

      const body = client.received.subarray(headLength)
      expect(body.byteLength).to.be.within(1, 256)
      expect(listenerEventCount(metrics, 'http_request')).to.equal(1)

      await client.waitFor(c => c.closed, ANSWER_CLOSE_BOUND, 'the socket closing')
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })

    const badUpgrades = [{
      name: 'without Sec-WebSocket-Key',
      request: upgradeRequest({ 'Sec-WebSocket-Key': undefined }),
      status: 400
    }, {
      name: 'with a Sec-WebSocket-Key that is not 16 bytes in base64',
      request: upgradeRequest({ 'Sec-WebSocket-Key': 'not-a-key' }),
      status: 400
    }, {
      name: 'with an unsupported Sec-WebSocket-Version',
      request: upgradeRequest({ 'Sec-WebSocket-Version': '12' }),
      status: 400,
      header: /\r\nSec-WebSocket-Version: 13, 8\r\n/i
    }, {
      name: 'to another protocol than websocket',
      request: upgradeRequest({ Upgrade: 'h2c' }),
      status: 400
    }, {
      name: 'with another method than GET',
      request: upgradeRequest({}, 'POST / HTTP/1.1'),
      status: 405
    }]

    for (const bad of badUpgrades) {
      it(`answers an upgrade request ${bad.name} with ${bad.status}, then closes the socket`, async () => {
        const { node, listener, ma } = await listeningNode(nodes)
        const client = await track(rawClient(ma))

        client.write(bad.request)
        await client.waitFor(c => c.closed, DEADLINE, 'the server closing the socket')

        const response = client.received.toString('latin1')
        expect(response).to.match(new RegExp(`^HTTP/1\\.1 ${bad.status} `))
        expect(client.ended).to.be.true()

        if (bad.header != null) {
          expect(response).to.match(bad.header)
        }

        await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
        expect(node.getConnections()).to.be.empty()
      })
    }

    const malformedRequests = [{
      name: 'a header line without a colon',
      request: 'GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n',
      status: 400
    }, {
      name: 'headers larger than the HTTP server accepts',
      request: `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Large: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
      status: 431
    }, {
      name: 'binary garbage after a printable first byte',
      request: Buffer.concat([Buffer.from('G'), Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10, 13, 10])]),
      status: 400
    }]

    for (const malformed of malformedRequests) {
      it(`answers a malformed HTTP request with ${malformed.status}, then destroys and counts its socket: ${malformed.name}`, async () => {
        const { listener, metrics, ma } = await listeningNode(nodes)
        const client = await track(rawClient(ma))

        client.write(malformed.request)
        await client.waitFor(c => c.closed, DEADLINE, 'the server closing the socket')

        expect(client.received.toString('latin1')).to.match(new RegExp(`^HTTP/1\\.1 ${malformed.status} [^\\r]+\\r\\nConnection: close\\r\\n\\r\\n$`))
        expect(listenerEventCount(metrics, 'http_error')).to.equal(1)
        await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
      })
    }

    it('destroys and counts a TLS ClientHello on a listener without TLS', async () => {
      const { listener, metrics, ma } = await listeningNode(nodes)
      const client = await halfTlsClient(ma)
      clients.push(client)

      // long before the handshake deadline
      await withDeadline(closedByServer(client), 2_000, 'the socket being destroyed')

      expect(listenerEventCount(metrics, 'unexpected_tls')).to.equal(1)
      expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(0)
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })

    for (const [firstByte, protocol] of [[0x1F, 'tls'], [0x20, 'http'], [0x7E, 'http'], [0x7F, 'tls']] as const) {
      it(`takes a first byte of 0x${firstByte.toString(16)} for ${protocol === 'tls' ? 'TLS' : 'HTTP'}: printable ASCII starts an HTTP request`, async () => {
        const { metrics, ma } = await listeningNode(nodes)
        const client = await track(rawClient(ma))
        client.write(Buffer.concat([Uint8Array.from([firstByte]), Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')]))

        await client.waitFor(c => c.closed, DEADLINE, 'the listener ending the socket')

        if (protocol === 'tls') {
          // this listener serves no TLS
          expect(listenerEventCount(metrics, 'unexpected_tls')).to.equal(1)
          expect(client.received).to.have.lengthOf(0)
        } else {
          // the HTTP server's answer to a malformed request line
          expect(client.received.toString('latin1')).to.match(/^HTTP\/1\.1 400 /)
          expect(listenerEventCount(metrics, 'unexpected_tls')).to.equal(0)
        }
      })
    }

    it('destroys and counts plain HTTP on a listener that only serves TLS', async () => {
      const { listener, metrics, ma } = await listeningNode(nodes, {}, true)
      const client = await halfHttpClient(ma)
      clients.push(client)

      await withDeadline(closedByServer(client), 2_000, 'the socket being destroyed')

      expect(listenerEventCount(metrics, 'unexpected_plaintext')).to.equal(1)
      expect(listenerEventCount(metrics, 'handshake_timeout')).to.equal(0)
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })

    it('destroys and counts a TLS handshake that is garbage', async () => {
      const { listener, metrics, ma } = await listeningNode(nodes, {}, true)
      const client = await track(rawClient(ma))

      // a handshake record of 64 bytes that holds no ClientHello
      client.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]), randomBytes(64)]))
      await client.waitFor(c => c.closed, 2_000, 'the server closing the socket')

      expect(listenerEventCount(metrics, 'tls_error')).to.equal(1)
      await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })

    it('aborts a connection that receives a text frame with an InvalidMessageError', async () => {
      const bare = bareListener()
      listeners.push(bare.listener)
      await bare.listener.listen(LOOPBACK_WS)

      const client = await upgradedClient(bare.listener.getAddrs()[0])
      clients.push(client)
      await until(() => bare.upgrading.length === 1, DEADLINE, 'the connection reaching the upgrader')

      const maConn = bare.upgrading[0]
      const closed = pEvent<'close', any>(maConn, 'close', { signal: AbortSignal.timeout(DEADLINE) })
      client.send('libp2p only sends binary frames')

      const evt = await closed
      expect(evt.error).to.have.property('name', 'InvalidMessageError')
      expect(evt.error.message).to.match(/text frame/)
      expect(maConn.status).to.equal('aborted')

      await withDeadline(closedByServer(client), DEADLINE, 'the client seeing the connection close')
      await until(() => totalOf(bare.listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
    })
  })

  describe('WebSocket protocol violations', () => {
    const violations = [{
      name: 'a frame with the reserved data opcode 3',
      bytes: frame({ opcode: 0x3, payload: 'x' }),
      code: 1002
    }, {
      name: 'a frame with the reserved control opcode 0xB',
      bytes: frame({ opcode: 0xb }),
      code: 1002
    }, {
      name: 'an unmasked client frame',
      bytes: frame({ opcode: OPCODE.binary, payload: 'x', masked: false }),
      code: 1002
    }, {
      name: 'a frame with RSV1 set and no extension negotiated',
      bytes: frame({ opcode: OPCODE.binary, payload: 'x', rsv: 0b100 }),
      code: 1002
    }, {
      name: 'a close frame with code 1005, which must not be sent',
      bytes: frame({ opcode: OPCODE.close, payload: closePayload(1005) }),
      code: 1002
    }, {
      name: 'a close frame with code 999',
      bytes: frame({ opcode: OPCODE.close, payload: closePayload(999) }),
      code: 1002
    }, {
      name: 'a close frame with a one byte payload',
      bytes: frame({ opcode: OPCODE.close, payload: Uint8Array.from([3]) }),
      code: 1002
    }, {
      name: 'a close frame whose reason is not UTF-8',
      bytes: frame({ opcode: OPCODE.close, payload: closePayload(1000, Uint8Array.from([0xff, 0xfe, 0xc3])) }),
      code: 1007
    }, {
      name: 'a ping with more than 125 bytes',
      bytes: frame({ opcode: OPCODE.ping, payload: new Uint8Array(126) }),
      code: 1002
    }, {
      name: 'a fragmented ping',
      bytes: frame({ opcode: OPCODE.ping, payload: 'x', fin: false }),
      code: 1002
    }, {
      name: 'a continuation frame with nothing to continue',
      bytes: frame({ opcode: OPCODE.continuation, payload: 'x' }),
      code: 1002
    }, {
      name: 'a text frame that is not UTF-8',
      bytes: frame({ opcode: OPCODE.text, payload: Uint8Array.from([0xff, 0xfe, 0xfd]) }),
      code: 1007
    }]

    for (const violation of violations) {
      it(`closes the connection with ${violation.code} on ${violation.name}`, async () => {
        const { node, listener, ma } = await listeningNode(nodes)
        const ws = await rawWebSocket(ma)
        clients.push(ws.client.socket)
        await until(() => listener.socketCounts().upgrading === 1, DEADLINE, 'the socket entering the libp2p upgrade')

        ws.client.write(violation.bytes)
        await ws.client.waitFor(() => closeCodeOf(ws.received()) != null, DEADLINE, 'a close frame from the server')

        expect(closeCodeOf(ws.received())).to.equal(violation.code)

        await ws.client.waitFor(c => c.closed, DEADLINE, 'the socket closing')
        await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing the socket')
        expect(node.getConnections()).to.be.empty()
      })
    }

    it('drops a peer that breaks the protocol once our close frame is out, without waiting for its answer', async () => {
      // far longer than the bound below: only the drop can meet it
      const closeTimeout = 10_000
      const bare = bareListener({ closeTimeout })
      listeners.push(bare.listener)
      await bare.listener.listen(LOOPBACK_WS)

      // keeps its side open when the server ends its own
      const ws = await rawWebSocket(bare.listener.getAddrs()[0], { allowHalfOpen: true })
      clients.push(ws.client.socket)
      await until(() => bare.upgrading.length === 1, DEADLINE, 'the connection reaching the upgrader')

      ws.client.write(frame({ opcode: 0x3 }))
      await ws.client.waitFor(() => closeCodeOf(ws.received()) != null, DEADLINE, 'a close frame from the server')
      const start = Date.now()
      expect(closeCodeOf(ws.received())).to.equal(1002)

      // the server ends its side at once and does not wait for the peer's
      // closing handshake (`ws` alone would wait closeTimeout, reading on)
      await ws.client.waitFor(c => c.ended, DEADLINE, 'the server ending its side')
      await until(() => totalOf(bare.listener.socketCounts()) === 0, DROP_BOUND, 'the server destroying the socket')
      expect(Date.now() - start).to.be.below(DROP_BOUND)
    })
  })

  describe('listeners that break the protocol', () => {
    it('drops a listener that breaks the protocol once our close frame is out, without waiting for its answer', async () => {
      // far longer than the bound below: only the drop can meet it
      const closeTimeout = 10_000
      const server = await hostileWebSocketServer(frame({ opcode: 0x3, masked: false }))
      servers.push(server)

      // hands the bare connection back, so nothing but the transport can close it
      const transport = await bareDial(server.multiaddr, { closeTimeout }, DEADLINE)

      // `ws` answers with 1002 and ends its side at once
      await server.clientEnded(DEADLINE)
      const start = Date.now()
      expect(closeCodeOf(server.received())).to.equal(1002)

      // then does not wait for the closing handshake (`ws` alone would wait
      // closeTimeout, reading on)
      await until(() => totalOf(transport.socketCounts()) === 0, DROP_BOUND, 'the dialer destroying the socket')
      expect(Date.now() - start).to.be.below(DROP_BOUND)
    })
  })

  describe('peers that stop reading', () => {
    it('keeps what waits to be written bounded by maxBufferedAmount and closes the connection once it is idle', async function () {
      const maxBufferedAmount = 64 * 1024
      const inactivityTimeout = 1_000

      peer = await startRemoteNode('ours')
      const node = await dialerNode(nodes, {
        maxBufferedAmount,
        outboundSocketInactivityTimeout: inactivityTimeout
      })

      const connection = await node.dial(multiaddr(peer.addr), { signal: AbortSignal.timeout(DEADLINE) })
      const maConn = maConnOf(connection)
      const socket = maConn.socket

      if (socket == null) {
        throw new Error('no socket under the connection')
      }

      // the child accepts 32 streams of a protocol; each may be sent a yamux
      // window (256 KiB) before the peer acknowledges anything: 8 MiB in all,
      // more than the kernel buffers of a loopback connection hold
      const streams: Stream[] = []

      for (let i = 0; i < 32; i++) {
        streams.push(await connection.newStream(HOLD_PROTOCOL, { signal: AbortSignal.timeout(DEADLINE) }))
      }

      const closed = pEvent<'close', any>(maConn, 'close', { signal: AbortSignal.timeout(DEADLINE * 2) })
      closed.catch(() => {})
      peer.child.freeze()

      let largest = 0
      const measure = (): void => {
        largest = Math.max(largest, socket.writableLength, maConn.websocket.bufferedAmount)
      }
      // nothing signals a change of the amount buffered: sample it
      const sampler = setInterval(measure, 2)
      let written = 0

      try {
        const chunk = new Uint8Array(16 * 1024)

        await withDeadline(Promise.all(streams.map(async stream => {
          while (stream.status === 'open' && stream.writeStatus === 'writable') {
            const more = stream.send(chunk)
            written += chunk.byteLength
            measure()

            if (!more) {
              // libp2p tells us to wait: we do, until the connection gives up
              await pEvent(stream, 'drain', { rejectionEvents: ['close'] }).catch(() => {})
            }
          }
        })), DEADLINE * 2, 'the connection closing on its inactivity timeout')

        const evt = await closed
        expect(evt.error).to.have.property('name', 'TimeoutError')
      } finally {
        clearInterval(sampler)
      }

      // the test exercised backpressure, and it held
      expect(written).to.be.greaterThan(1024 * 1024)
      expect(largest).to.be.at.least(maxBufferedAmount)
      expect(largest).to.be.at.most(2 * maxBufferedAmount)
      expect(connection.status).to.not.equal('open')
      await until(() => totalOf(transportOf(node).socketCounts()) === 0, DEADLINE, 'the transport releasing the socket')
    })
  })
})
