import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { Uint8ArrayList } from 'uint8arraylist'
import { WebSocket, WebSocketServer } from 'ws'
import { webSocketToMaConn } from '../src/websocket-to-conn.ts'
import { namespaceTcpSockets } from '../toolbox/tcp-table.ts'
import { withDeadline } from './fixtures/deadline.ts'
import { muteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
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

function activeTimers (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

describe('a connection over a WebSocket', () => {
  let server: WebSocketServer | undefined
  let mute: HandMadeWebSocketServer | undefined
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
    server = mute = undefined
  })

  it('closes cleanly on both sides against a healthy peer, leaving no timer', async () => {
    const { websocket, socket } = await openClient(await healthyServer())
    const remote = await peer
    const remoteClose = new Promise<number>(resolve => { remote.once('close', (code: number) => { resolve(code) }) })
    const timers = activeTimers()
    const maConn = toMaConn(websocket, socket)

    const start = Date.now()
    await withDeadline(maConn.close(), 2_000, 'close()')

    expect(Date.now() - start).to.be.lessThan(CLOSE_TIMEOUT)
    expect(maConn.status).to.equal('closed')
    expect(await withDeadline(remoteClose, 1_000, 'the peer seeing the close')).to.equal(1000)
    expect(socket.destroyed).to.be.true()
    expect(activeTimers()).to.be.at.most(timers)
  })

  it('terminates the socket when a peer that stopped answering does not complete the closing handshake', async () => {
    mute = await muteWebSocketServer()
    const { websocket, socket } = await openClient(mute.url)
    const maConn = toMaConn(websocket, socket)
    const timers = activeTimers()

    const start = Date.now()
    await withDeadline(maConn.close(), 2_000, 'close()')
    const elapsed = Date.now() - start

    expect(elapsed).to.be.at.least(CLOSE_TIMEOUT - 20)
    expect(elapsed).to.be.lessThan(CLOSE_TIMEOUT + 1_000)
    expect(socket.destroyed).to.be.true()
    await withDeadline(mute.clientClosed(), 1_000, 'the peer seeing the socket close')
    expect(activeTimers()).to.be.at.most(timers)
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

    // until the kernel takes no more, with a bound far above its buffers
    for (let sent = 0; socket.writableLength === 0 && sent < 256 * 1024 * 1024; sent += chunk.byteLength) {
      websocket.send(chunk)
    }

    expect(socket.writableLength).to.be.above(0)
    expect(namespaceTcpSockets().find(entry => entry.local === local)?.sendQueue).to.be.above(0)

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
    expect(socket.destroyed).to.be.true()
  })
})
