import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { WebSocketServer } from 'ws'
import { webSockets } from '../src/index.ts'
import { createNode } from '../toolbox/node.ts'
import { startRemoteNode } from '../toolbox/remote-node.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { FakeWebSocket } from './fixtures/fake-websocket.ts'
import { muteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import { totalOf, transportOf } from './fixtures/internals.ts'
import type { RemoteNode } from '../toolbox/remote-node.ts'
import type { SilentServer } from '../toolbox/silent-server.ts'
import type { HandMadeWebSocketServer as MuteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import type { TrackingTransport } from './fixtures/internals.ts'
import type { DialTransportOptions, Libp2p, Libp2pEvents, MultiaddrConnection, Startable, Upgrader } from '@libp2p/interface'
import type { AddressInfo } from 'node:net'

describe('outbound sockets', () => {
  let node: Libp2p | undefined
  let server: SilentServer | undefined
  let wsServer: WebSocketServer | undefined
  let peer: RemoteNode | undefined
  let mute: MuteWebSocketServer | undefined

  afterEach(async () => {
    await node?.stop()
    await server?.close()
    await mute?.close()
    wsServer?.clients.forEach(client => { client.terminate() })
    wsServer?.close()
    peer?.child.kill()
    node = server = wsServer = peer = mute = undefined
  })

  it('node.stop() during a dial to a server that never answers terminates the socket', async () => {
    server = await silentServer()
    node = await createNode({ listen: [] })
    const transport = transportOf(node)

    const dial = node.dial(server.multiaddr.encapsulate('/ws'))
    dial.catch(() => {})
    await server.connected()
    expect(transport.socketCounts().dialing).to.equal(1)

    await withDeadline(node.stop(), 2_000, 'node.stop()')

    await expect(withDeadline(dial, 1_000, 'the dial settling')).to.eventually.be.rejected()
    expect(totalOf(transport.socketCounts())).to.equal(0)
    await server.allClosed(1_000)
  })

  it('aborting a dial while the server has not answered the upgrade terminates the socket', async () => {
    server = await silentServer()
    node = await createNode({ listen: [] })
    const transport = transportOf(node)
    const controller = new AbortController()

    const dial = node.dial(server.multiaddr.encapsulate('/ws'), { signal: controller.signal })
    dial.catch(() => {})
    await server.connected()
    controller.abort()

    await expect(withDeadline(dial, 1_000, 'the dial settling')).to.eventually.be.rejected()
      .with.property('name').that.matches(/AbortError|DialError/)
    await server.allClosed(1_000)
    expect(totalOf(transport.socketCounts())).to.equal(0)
  })

  it('aborting a dial in the middle of the libp2p handshake terminates the socket', async () => {
    // completes WebSocket upgrades and then never says a word
    wsServer = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise(resolve => wsServer?.once('listening', resolve))
    const upgraded = new Promise<void>(resolve => wsServer?.once('connection', () => { resolve() }))
    const { port } = wsServer.address() as AddressInfo

    node = await createNode({ listen: [] })
    const transport = transportOf(node)
    const controller = new AbortController()

    const dial = node.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`), { signal: controller.signal })
    dial.catch(() => {})
    await withDeadline(upgraded, 5_000, 'the WebSocket upgrade')
    await until(() => transport.socketCounts().upgrading === 1, 5_000, 'the socket entering the libp2p upgrade')

    const closed = new Promise<void>(resolve => {
      [...(wsServer?.clients ?? [])][0].once('close', () => { resolve() })
    })
    controller.abort()

    await expect(withDeadline(dial, 1_000, 'the dial settling')).to.eventually.be.rejected()
    await withDeadline(closed, 1_000, 'the server seeing the socket close')
    await until(() => totalOf(transport.socketCounts()) === 0, 1_000, 'the registry emptying')
  })

  it('node.stop() terminates dialed connections whose peer stopped answering', async () => {
    peer = await startRemoteNode('ours')
    node = await createNode({ listen: [] })
    const transport = transportOf(node)

    await node.dial(multiaddr(peer.addr))
    expect(transport.socketCounts().open).to.equal(1)
    peer.child.freeze()

    const start = Date.now()
    await withDeadline(node.stop(), 2_000, 'node.stop()')

    // libp2p gives connections 500ms to close before aborting them: a close
    // that waited for the frozen peer would take all of it
    expect(Date.now() - start).to.be.lessThan(400)
    expect(totalOf(transport.socketCounts())).to.equal(0)
  })

  it('afterStop terminates outbound sockets that nothing else ends: a dial in flight without a signal, and a connection libp2p does not know', async () => {
    server = await silentServer()
    mute = await muteWebSocketServer()
    const transport = webSockets()({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>()
    }) as TrackingTransport & Startable
    // hands the bare connection back: no libp2p connection, nobody to close it
    const upgrader: Partial<Upgrader> = {
      upgradeOutbound: async (maConn: MultiaddrConnection) => maConn as any
    }

    // no signal: nothing but the transport can end this dial
    const dial = transport.dial(server.multiaddr.encapsulate('/ws'), { upgrader } as unknown as DialTransportOptions)
    dial.catch(() => {})
    await server.connected()
    await transport.dial(multiaddr(`/ip4/127.0.0.1/tcp/${new URL(mute.url).port}/ws`), {
      upgrader,
      signal: AbortSignal.timeout(5_000)
    } as unknown as DialTransportOptions)
    expect(transport.socketCounts()).to.deep.include({ dialing: 1, open: 1 })

    // what libp2p calls on node.stop(), and nothing else: no connection
    // manager closes connections in between
    await transport.beforeStop?.()
    await transport.stop()
    // well within closeTimeout, after which afterStop gives up waiting
    await withDeadline(transport.afterStop?.(), 1_000, 'afterStop()')

    expect(totalOf(transport.socketCounts())).to.equal(0)
    await expect(withDeadline(dial, 1_000, 'the dial settling')).to.eventually.be.rejected()
    await server.allClosed(1_000)
    await withDeadline(mute.clientClosed(), 1_000, 'the mute server seeing the socket close')
  })

  it('afterStop gives up on a socket that does not report its close within closeTimeout', async () => {
    const transport = webSockets({ closeTimeout: 100 })({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>()
    }) as TrackingTransport & Startable
    // terminated, it never reports its close
    const websocket = new FakeWebSocket()
    websocket.terminate = () => {}
    const { dialed } = transport as unknown as { dialed: { track(websocket: FakeWebSocket, phase: string): void } }
    dialed.track(websocket, 'open')

    await transport.beforeStop?.()
    const start = Date.now()
    await withDeadline(transport.afterStop?.(), 1_000, 'afterStop()')

    expect(Date.now() - start).to.be.at.least(90)
  })
})
