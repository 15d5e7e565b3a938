import { getEventListeners } from 'node:events'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { multiaddrToUri } from '@multiformats/multiaddr-to-uri'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { Uint8ArrayList } from 'uint8arraylist'
import { WebSocket, WebSocketServer } from 'ws'
import { webSocketToMaConn } from '../src/websocket-to-conn.ts'
import { closeCodeOf, frame } from '../toolbox/raw-websocket.ts'
import { namespaceTcpSockets } from '../toolbox/tcp-table.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { FakeWebSocket, fakeSocket } from './fixtures/fake-websocket.ts'
import { hostileWebSocketServer, muteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import { watchTimers } from './fixtures/timers.ts'
import type { WebSocketMultiaddrConnectionInit } from '../src/websocket-to-conn.ts'
import type { HandMadeWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import type { MultiaddrConnection } from '@libp2p/interface'
import type { Socket, AddressInfo } from 'node:net'
import type { WebSocket as ServerSideWebSocket } from 'ws'

const CLOSE_TIMEOUT = 300

async function openClient (url: string): Promise<{ websocket: WebSocket, socket: Socket }> {
  const websocket = new WebSocket(url)
  websocket.on('error', () => {})
  const socket = await new Promise<Socket>((resolve, reject) => {
    let upgraded: Socket | undefined
    websocket.once('upgrade', (res) => { upgraded = res.socket as Socket })
    websocket.once('open', () => { resolve(upgraded as Socket) })
    websocket.once('error', reject)
  })

  return { websocket, socket }
}

function toMaConn (websocket: WebSocket, socket: Socket, stopping?: AbortSignal): MultiaddrConnection {
  return webSocketToMaConn({
    websocket,
    socket,
    stopping,
    remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1/ws'),
    direction: 'outbound',
    log: defaultLogger().forComponent('test:websocket-to-conn'),
    closeTimeout: CLOSE_TIMEOUT
  })
}

/**
 * Timers started by the module under test, and those it starts in `ws` (the
 * close timer of `websocket.close()`)
 */
const OUR_CODE = /src[\\/]websocket-to-conn\./

function activeTimers (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

describe('a connection over a WebSocket', () => {
  let server: WebSocketServer | undefined
  let mute: HandMadeWebSocketServer | undefined
  let hostile: HandMadeWebSocketServer | undefined
  let peer: Promise<ServerSideWebSocket>

  const healthyServer = async (): Promise<string> => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await pEvent(server, 'listening')
    peer = new Promise(resolve => server?.once('connection', resolve))
    return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  afterEach(async () => {
    server?.clients.forEach(client => { client.terminate() })
    server?.close()
    await mute?.close()
    await hostile?.close()
    server = mute = hostile = undefined
  })

  it('closes cleanly on both sides against a healthy peer, leaving no timer', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const remoteClose = new Promise<number>(resolve => { remote.once('close', (code: number) => { resolve(code) }) })
    const timers = watchTimers(OUR_CODE)
    const maConn = toMaConn(websocket, socket)

    const start = Date.now()
    try {
      await withDeadline(maConn.close(), 2_000, 'close()')
    } finally {
      timers.stop()
    }

    expect(Date.now() - start).to.be.lessThan(CLOSE_TIMEOUT)
    expect(maConn.status).to.equal('closed')
    expect(await withDeadline(remoteClose, 1_000, 'the peer seeing the close')).to.equal(1000)
    expect(socket.destroyed).to.be.true()
    expect(timers.pending()).to.deep.equal([])
    expect(websocket.listenerCount('message')).to.equal(0)
  })

  it('terminates the socket when a peer that stopped answering does not complete the closing handshake', async () => {
    mute = await muteWebSocketServer()
    const { websocket, socket } = await openClient(mute.url)
    const maConn = toMaConn(websocket, socket)
    const timers = watchTimers(OUR_CODE)

    const start = Date.now()
    try {
      await withDeadline(maConn.close(), 2_000, 'close()')
    } finally {
      timers.stop()
    }
    const elapsed = Date.now() - start

    expect(elapsed).to.be.at.least(CLOSE_TIMEOUT - 20)
    expect(elapsed).to.be.lessThan(CLOSE_TIMEOUT + 1_000)
    expect(socket.destroyed).to.be.true()
    await withDeadline(mute.clientClosed(), 1_000, 'the peer seeing the socket close')
    expect(timers.pending()).to.deep.equal([])
  })

  it('while the node stops, sends the close frame and does not wait for the peer', async () => {
    mute = await muteWebSocketServer()
    const { websocket, socket } = await openClient(mute.url)
    const maConn = toMaConn(websocket, socket, AbortSignal.abort())

    await withDeadline(maConn.close(), CLOSE_TIMEOUT / 2, 'close()')
    await withDeadline(mute.clientClosed(), 1_000, 'the peer seeing the socket close')

    expect(socket.destroyed).to.be.true()
    // a masked close frame: FIN + opcode 8, then the mask bit and length 2
    expect(mute.received().subarray(0, 2)).to.equalBytes(Uint8Array.from([0x88, 0x82]))
  })

  it('terminates at once when the close is aborted', async () => {
    mute = await muteWebSocketServer()
    const { websocket, socket } = await openClient(mute.url)
    const maConn = toMaConn(websocket, socket)
    const controller = new AbortController()

    const closing = maConn.close({ signal: controller.signal })
    controller.abort()
    await withDeadline(closing, CLOSE_TIMEOUT / 2, 'close()')

    expect(socket.destroyed).to.be.true()
  })

  it('reset terminates the socket without a closing handshake', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const remoteClose = new Promise<number>(resolve => { remote.once('close', (code: number) => { resolve(code) }) })
    const maConn = toMaConn(websocket, socket)

    maConn.abort(new Error('reset by test'))

    // 1006: the connection dropped with no close frame
    expect(await withDeadline(remoteClose, 1_000, 'the peer seeing the reset')).to.equal(1006)
    expect(socket.destroyed).to.be.true()
    expect(maConn.status).to.equal('aborted')
  })

  it('reset leaves the kernel nothing to send to a peer that stopped reading', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    // the peer stops reading: what we write piles up in the kernel's buffers
    ;(remote as any)._socket.pause()
    const maConn = toMaConn(websocket, socket)
    const local = `${socket.localAddress}:${socket.localPort}`
    const chunk = new Uint8Array(64 * 1024)

    const kernelSendQueue = (): number => namespaceTcpSockets().find(entry => entry.local === local)?.sendQueue ?? 0
    let sent = 0

    // until the kernel itself holds unsent bytes. Node's buffer filling is not
    // enough: on loopback the peer's kernel takes (and acknowledges) data until
    // its receive buffer has grown to its limit, so our send queue can be empty
    // for a while after a write was refused. Keep Node's buffer topped up
    // until the peer's window closes, with bounds far above the kernels' buffers
    await until(() => {
      while (socket.writableLength === 0 && sent < 256 * 1024 * 1024) {
        websocket.send(chunk)
        sent += chunk.byteLength
      }

      return kernelSendQueue() > 0
    }, 5_000, 'the kernel holding unsent data')

    expect(socket.writableLength).to.be.above(0)

    const closed = pEvent(socket, 'close')
    maConn.abort(new Error('reset by test'))
    await withDeadline(closed, 1_000, 'the socket closing')

    // a FIN would leave an orphan in FIN_WAIT1 holding megabytes, retried
    // for minutes towards a peer that may be gone; an RST leaves nothing
    expect(namespaceTcpSockets().filter(entry => entry.local === local && entry.sendQueue > 0)).to.be.empty()
  })

  it('a peer reset ends the connection as reset', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const maConn = toMaConn(websocket, socket)
    const closed = pEvent(maConn, 'close')

    remote.terminate()

    const evt: any = await withDeadline(closed, 1_000, 'the connection closing')
    expect(evt.error).to.have.property('name', 'StreamResetError')
    expect(maConn.status).to.equal('reset')
  })

  it('aborts with a clear error on a text frame', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const maConn = toMaConn(websocket, socket)
    const closed = pEvent(maConn, 'close')

    remote.send('not libp2p')

    const evt: any = await withDeadline(closed, 1_000, 'the connection closing')
    expect(evt.error).to.have.property('name', 'InvalidMessageError')
    expect(evt.error.message).to.include('text frame')
    expect(maConn.status).to.equal('aborted')
  })

  it('delivers binary messages as data', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const maConn = toMaConn(websocket, socket)
    const message = pEvent(maConn, 'message')

    remote.send(Uint8Array.from([1, 2, 3]))

    const evt: any = await withDeadline(message, 1_000, 'a message')
    expect(evt.data.subarray()).to.equalBytes(Uint8Array.from([1, 2, 3]))
    maConn.abort(new Error('done'))
  })

  it('joins small buffers into one message and slices large ones, no message over 65,537 bytes', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const maConn = toMaConn(websocket, socket)
    const received: Buffer[] = []
    const total = 3 + 200 * 1024
    const all = new Promise<void>(resolve => {
      let bytes = 0
      remote.on('message', (data: Buffer) => {
        received.push(data)
        bytes += data.byteLength

        if (bytes >= total) {
          resolve()
        }
      })
    })

    const large = Uint8Array.from({ length: 200 * 1024 }, (_, i) => i % 251)
    maConn.send(new Uint8ArrayList(Uint8Array.from([1]), Uint8Array.from([2]), Uint8Array.from([3])))
    maConn.send(large)
    await withDeadline(all, 2_000, 'every byte arriving')

    expect(received[0]).to.equalBytes(Uint8Array.from([1, 2, 3]))
    expect(Math.max(...received.map(message => message.byteLength))).to.be.at.most(65_537)
    expect(Buffer.concat(received.slice(1))).to.equalBytes(large)
    maConn.abort(new Error('done'))
  })

  it('writes its data frames itself, behind ws, when no extension was negotiated', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const received = new Promise<Buffer>(resolve => { remote.once('message', resolve) })
    const maConn = toMaConn(websocket, socket)
    let sends = 0
    const send = websocket.send.bind(websocket)
    websocket.send = ((...args: Parameters<WebSocket['send']>) => { sends++; send(...args) }) as WebSocket['send']

    expect(websocket.extensions).to.equal('')
    maConn.send(Uint8Array.from([4, 5, 6]))

    expect(await withDeadline(received, 1_000, 'the message')).to.equalBytes(Uint8Array.from([4, 5, 6]))
    expect(sends).to.equal(0)
    maConn.abort(new Error('done'))
  })

  it('leaves its messages to ws when an extension was negotiated, so that ws applies it', async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
    await pEvent(server, 'listening')
    const connected = pEvent<'connection', ServerSideWebSocket>(server, 'connection')
    const websocket = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { perMessageDeflate: true })
    let socket: Socket | undefined
    websocket.once('upgrade', (res) => { socket = res.socket as Socket })
    await withDeadline(pEvent(websocket, 'open'), 2_000, 'the client open')
    const remote = await withDeadline(connected, 2_000, 'the server side')
    const received = new Promise<Buffer>(resolve => { remote.once('message', resolve) })
    const maConn = toMaConn(websocket, socket as Socket)
    let sends = 0
    const send = websocket.send.bind(websocket)
    websocket.send = ((...args: Parameters<WebSocket['send']>) => { sends++; send(...args) }) as WebSocket['send']

    expect(websocket.extensions).to.equal('permessage-deflate')
    // large enough for ws to compress it
    const data = new Uint8Array(4096).fill(9)
    maConn.send(data)

    expect(await withDeadline(received, 1_000, 'the message')).to.equalBytes(data)
    expect(sends).to.equal(1)
    maConn.abort(new Error('done'))
  })

  it('writes no data frame after its close frame', async () => {
    mute = await muteWebSocketServer()
    const { websocket, socket } = await openClient(mute.url)
    const maConn = toMaConn(websocket, socket)

    websocket.close(1000)
    // Node.js counts what is queued in bytesWritten already
    const written = socket.bytesWritten
    maConn.send(Uint8Array.from([1, 2, 3]))

    expect(socket.bytesWritten).to.equal(written)
    maConn.abort(new Error('done'))
  })

  it('closes an idle connection after the inactivity timeout', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const maConn = webSocketToMaConn({
      websocket,
      socket,
      remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1/ws'),
      direction: 'outbound',
      log: defaultLogger().forComponent('test:websocket-to-conn'),
      inactivityTimeout: 100
    })

    const evt: any = await withDeadline(pEvent(maConn, 'close'), 2_000, 'the idle connection closing')
    expect(evt.error).to.have.property('name', 'TimeoutError')
    expect(evt.error.message).to.include('100ms')
    expect(socket.destroyed).to.be.true()
  })

  it('while the node stops, flushes what was written before it terminates the socket', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    let received = 0
    remote.on('message', (data: Buffer) => { received += data.byteLength })
    const remoteClose = new Promise<number>(resolve => { remote.once('close', (code: number) => { resolve(code) }) })
    const maConn = webSocketToMaConn({
      websocket,
      socket,
      stopping: AbortSignal.abort(),
      remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1/ws'),
      direction: 'outbound',
      log: defaultLogger().forComponent('test:websocket-to-conn'),
      // the writer is never held, so the close starts with all of it queued
      maxBufferedAmount: 64 * 1024 * 1024
    })
    const data = new Uint8Array(16 * 1024 * 1024)

    expect(maConn.send(data)).to.be.true()
    // more than the kernel takes at once: the rest waits in the socket
    expect(socket.writableLength).to.be.greaterThan(0)
    await withDeadline(maConn.close(), 5_000, 'close()')

    // every byte, then the close frame, before the socket went
    expect(await withDeadline(remoteClose, 5_000, 'the peer seeing the close')).to.equal(1000)
    expect(received).to.equal(data.byteLength)
    expect(socket.destroyed).to.be.true()
  })

  it('keeps a protocol error of the peer from crashing the process when nothing else listens for errors', async () => {
    // a frame with a reserved opcode, right after the upgrade
    hostile = await hostileWebSocketServer(frame({ opcode: 0x3, masked: false }))
    const server = hostile
    const websocket = new WebSocket(multiaddrToUri(server.multiaddr))
    const maConn = new Promise<MultiaddrConnection>((resolve, reject) => {
      websocket.once('error', reject)
      websocket.once('open', () => {
        // from here on no other 'error' listener: an 'error' event nobody
        // listens to throws. The frame is read once this handler returns
        websocket.off('error', reject)
        resolve(webSocketToMaConn({
          websocket,
          remoteAddr: server.multiaddr,
          direction: 'outbound',
          log: defaultLogger().forComponent('test:websocket-to-conn')
        }))
      })
    })

    const connection = await withDeadline(maConn, 2_000, 'the WebSocket opening')

    // `ws` answers the bad frame with 1002, then emits 'error'
    await until(() => closeCodeOf(server.received()) != null, 2_000, 'the close frame')
    expect(closeCodeOf(server.received())).to.equal(1002)
    connection.abort(new Error('test over'))
  })
})

describe('a connection over a WebSocket the test drives', () => {
  const MAX_BUFFERED_AMOUNT = 100

  function toFakeMaConn (websocket: FakeWebSocket, init: Partial<WebSocketMultiaddrConnectionInit> = {}): MultiaddrConnection {
    return webSocketToMaConn({
      websocket,
      remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1/ws'),
      direction: 'outbound',
      log: defaultLogger().forComponent('test:websocket-to-conn'),
      maxBufferedAmount: MAX_BUFFERED_AMOUNT,
      bufferedAmountPollInterval: 1,
      inactivityTimeout: 0,
      ...init
    })
  }

  /**
   * A connection over a browser-like WebSocket whose buffer is full, and the
   * number of timers active before any write polls it
   */
  function fullBufferedConnection (): { websocket: FakeWebSocket, maConn: MultiaddrConnection, timers: number } {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const timers = activeTimers()
    websocket.buffered = MAX_BUFFERED_AMOUNT

    return { websocket, maConn, timers }
  }

  function countDrains (maConn: MultiaddrConnection): { count: number } {
    const drains = { count: 0 }
    maConn.addEventListener('drain', () => { drains.count++ })

    return drains
  }

  it('delivers ArrayBuffer messages, as a browser WebSocket gives them, as data', async () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const message = pEvent(maConn, 'message')

    websocket.message(Uint8Array.from([4, 5, 6]).buffer)

    const evt: any = await withDeadline(message, 1_000, 'a message')
    expect(evt.data.subarray()).to.equalBytes(Uint8Array.from([4, 5, 6]))
  })

  it('aborts on a binary message of a type it cannot read, naming binaryType', async () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const closed = pEvent(maConn, 'close')

    websocket.message(new Blob([Uint8Array.from([1])]))

    const evt: any = await withDeadline(closed, 1_000, 'the connection closing')
    expect(evt.error).to.have.property('name', 'InvalidMessageError')
    expect(evt.error.message).to.include('binaryType')
    expect(maConn.status).to.equal('aborted')
  })

  it('without a socket, holds the writer while bufferedAmount is at maxBufferedAmount and polls it until it is below', async () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const drains = countDrains(maConn)
    const timers = activeTimers()
    websocket.buffered = MAX_BUFFERED_AMOUNT

    // the poll's timer is the one timer started
    expect(maConn.send(Uint8Array.from([1]))).to.be.false()
    expect(activeTimers()).to.equal(timers + 1)

    // a few polls find the buffer still full
    const reads = websocket.bufferedReads
    await until(() => websocket.bufferedReads >= reads + 3, 1_000, 'three polls')
    expect(drains.count).to.equal(0)

    websocket.buffered = MAX_BUFFERED_AMOUNT - 1
    await until(() => drains.count === 1, 1_000, 'a drain once the buffer is below the limit')
  })

  it('without a socket, starts no poll when the buffer has room', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const timers = activeTimers()

    expect(maConn.send(Uint8Array.from([1]))).to.be.true()
    expect(activeTimers()).to.equal(timers)
  })

  it('with a socket, resumes the writer from the send callback once the buffer is below maxBufferedAmount, without polling', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket, { socket: fakeSocket() })
    const drains = countDrains(maConn)
    const timers = activeTimers()
    websocket.buffered = MAX_BUFFERED_AMOUNT

    expect(maConn.send(Uint8Array.from([1]))).to.be.false()
    expect(activeTimers()).to.equal(timers)

    const { cb } = websocket.sent[0]
    expect(cb).to.be.a('function')
    cb?.()
    expect(drains.count).to.equal(0)

    websocket.buffered = MAX_BUFFERED_AMOUNT - 1
    cb?.()
    expect(drains.count).to.equal(1)
  })

  it('writes nothing to a destroyed socket and never holds the writer there', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket, { socket: fakeSocket(true) })
    websocket.buffered = 10 * MAX_BUFFERED_AMOUNT

    expect(maConn.send(Uint8Array.from([1]))).to.be.true()
    expect(websocket.sent).to.be.empty()
  })

  it('sends a buffer of exactly 65,537 bytes as one message, once', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket, { maxBufferedAmount: Infinity })

    maConn.send(new Uint8Array(65_537).fill(7))

    expect(websocket.sent.map(({ data }) => data.byteLength)).to.deep.equal([65_537])
  })

  it('sends pieces of exactly 65,537 bytes in all, as noise hands over a full frame, as one message', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket, { maxBufferedAmount: Infinity })

    // length prefix, ciphertext, tag
    maConn.send(new Uint8ArrayList(new Uint8Array(2), new Uint8Array(65_519), new Uint8Array(16)))

    expect(websocket.sent.map(({ data }) => data.byteLength)).to.deep.equal([65_537])
  })

  it('holds the writer back from 4 MiB buffered by default', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket, { maxBufferedAmount: undefined })

    websocket.buffered = 4 * 1024 * 1024 - 1
    expect(maConn.send(Uint8Array.from([1]))).to.be.true()

    websocket.buffered = 4 * 1024 * 1024
    expect(maConn.send(Uint8Array.from([2]))).to.be.false()
    maConn.abort(new Error('test over'))
  })

  it('sends no message for an empty write', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)

    maConn.send(new Uint8Array(0))
    maConn.send(Uint8Array.from([1]))

    expect(websocket.sent.map(({ data }) => data.byteLength)).to.deep.equal([1])
  })

  it('starts one poll however many writes find the buffer full', () => {
    const { maConn, timers } = fullBufferedConnection()

    maConn.send(Uint8Array.from([1]))
    maConn.send(Uint8Array.from([2]))
    maConn.send(Uint8Array.from([3]))

    expect(activeTimers()).to.equal(timers + 1)
    maConn.abort(new Error('test'))
    expect(activeTimers()).to.equal(timers)
  })

  it('closes at once over a WebSocket that is closed already, without waiting for a close event that came before', async () => {
    const websocket = new FakeWebSocket()
    websocket.readyState = 3
    const maConn = toFakeMaConn(websocket, { closeTimeout: 5_000 })

    await withDeadline(maConn.close(), 1_000, 'close()')

    expect(websocket.closeCalls).to.be.empty()
    expect(maConn.status).to.equal('closed')
  })

  it('joins small pieces into a message that owns its memory, not a slice of a shared pool', () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)

    maConn.send(new Uint8ArrayList(Uint8Array.from([1, 2]), Uint8Array.from([3])))

    const [{ data }] = websocket.sent
    expect(data).to.equalBytes(Uint8Array.from([1, 2, 3]))
    expect(data.buffer.byteLength).to.equal(3)
  })

  it('stops polling when the peer drops the connection', () => {
    const { websocket, maConn, timers } = fullBufferedConnection()

    maConn.send(Uint8Array.from([1]))
    expect(activeTimers()).to.equal(timers + 1)
    websocket.closed(false)

    expect(maConn.status).to.equal('reset')
    expect(activeTimers()).to.equal(timers)
  })

  it('stops polling as soon as it is aborted, before the WebSocket reports its close', () => {
    const { websocket, maConn, timers } = fullBufferedConnection()

    maConn.send(Uint8Array.from([1]))
    expect(activeTimers()).to.equal(timers + 1)
    maConn.abort(new Error('test'))

    // a browser WebSocket can only be closed, and reports it later
    expect(websocket.closeCalls).to.have.lengthOf(1)
    expect(activeTimers()).to.equal(timers)
  })

  for (const { name, socket, readyState } of [
    { name: 'whose socket is destroyed', socket: fakeSocket(true), readyState: 1 },
    { name: 'that is closing already', socket: fakeSocket(), readyState: 2 }
  ]) {
    it(`sends no close frame on a WebSocket ${name}, and terminates it after closeTimeout`, async () => {
      const websocket = new FakeWebSocket({ terminable: true })
      websocket.readyState = readyState
      const maConn = toFakeMaConn(websocket, { socket, closeTimeout: 10 })

      await withDeadline(maConn.close(), 1_000, 'close()')

      expect(websocket.closeCalls).to.be.empty()
      expect(maConn.status).to.equal('closed')
    })
  }

  it('leaves no listener on the signal given to close()', async () => {
    const websocket = new FakeWebSocket()
    const maConn = toFakeMaConn(websocket)
    const signal = AbortSignal.timeout(10_000)
    const listeners = getEventListeners(signal, 'abort').length

    const closing = maConn.close({ signal })
    await until(() => websocket.closeCalls.length === 1, 1_000, 'the close frame')
    websocket.closed(true)
    await withDeadline(closing, 1_000, 'close()')

    expect(websocket.closeCalls).to.deep.equal([1000])
    expect(getEventListeners(signal, 'abort')).to.have.lengthOf(listeners)
  })
})
