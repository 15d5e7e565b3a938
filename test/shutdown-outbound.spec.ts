import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { WebSocketServer } from 'ws'
import { createNode } from '../toolbox/node.ts'
import { startRemoteNode } from '../toolbox/remote-node.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { totalOf, transportOf } from './fixtures/internals.ts'
import type { RemoteNode } from '../toolbox/remote-node.ts'
import type { SilentServer } from '../toolbox/silent-server.ts'
import type { Libp2p } from '@libp2p/interface'
import type { AddressInfo } from 'node:net'

describe('outbound sockets', () => {
  let node: Libp2p | undefined
  let server: SilentServer | undefined
  let wsServer: WebSocketServer | undefined
  let peer: RemoteNode | undefined

  afterEach(async () => {
    await node?.stop()
    await server?.close()
    wsServer?.clients.forEach(client => { client.terminate() })
    wsServer?.close()
    peer?.child.kill()
    node = server = wsServer = peer = undefined
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
})
