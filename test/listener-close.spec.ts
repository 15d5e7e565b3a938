import net from 'node:net'
import { getNetConfig } from '@libp2p/utils'
import { expect } from 'aegir/chai'
import { createNode } from '../toolbox/node.ts'
import { closedByServer, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { bareListener, LOOPBACK_WS } from './fixtures/bare-listener.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { totalOf } from './fixtures/internals.ts'
import type { TrackingListener } from './fixtures/internals.ts'
import type { Libp2p, Listener } from '@libp2p/interface'

describe('listener.close()', () => {
  let listener: TrackingListener | undefined

  afterEach(async () => {
    await listener?.close()
    listener = undefined
  })

  it('resolves before listen() and emits close once', async () => {
    ({ listener } = bareListener())
    let closeEvents = 0
    listener.addEventListener('close', () => { closeEvents++ })

    await withDeadline(listener.close(), 1_000, 'close()')

    expect(closeEvents).to.equal(1)
    expect(listener.getAddrs()).to.be.empty()
  })

  it('is idempotent and concurrent calls share one close', async () => {
    ({ listener } = bareListener())
    await listener.listen(LOOPBACK_WS)
    const ma = listener.getAddrs()[0]
    const clients = await Promise.all([silentClient(ma), upgradedClient(ma)])
    await until(() => totalOf(listener?.socketCounts() ?? {}) === 2, 5_000, 'two sockets tracked')

    let closeEvents = 0
    listener.addEventListener('close', () => { closeEvents++ })

    await withDeadline(Promise.all([listener.close(), listener.close(), listener.close()]), 2_000, 'three concurrent close() calls')
    await withDeadline(listener.close(), 1_000, 'close() after close')

    expect(closeEvents).to.equal(1)
    expect(totalOf(listener.socketCounts())).to.equal(0)
    await withDeadline(Promise.all(clients.map(closedByServer)), 1_000, 'clients closing')
  })

  it('aborts upgrades in flight', async () => {
    const bare = bareListener()
    listener = bare.listener
    await listener.listen(LOOPBACK_WS)
    await upgradedClient(listener.getAddrs()[0])
    await until(() => bare.upgrading.length === 1, 5_000, 'an upgrade starting')
    expect(bare.signals).to.have.lengthOf(1)
    expect(bare.signals[0].aborted).to.be.false()

    await withDeadline(listener.close(), 2_000, 'close()')

    // the upgrade itself is told to stop, not only left without a socket
    expect(bare.signals[0].aborted).to.be.true()
    expect(bare.upgrading[0].status).to.not.equal('open')
  })

  it('resolves once the connections it accepted are closed, so the node holds none of them', async () => {
    const nodes: Libp2p[] = []

    try {
      const node = await createNode()
      nodes.push(node)
      // one dialing node per connection: a node dials a peer once
      for (let i = 0; i < 3; i++) {
        const dialer = await createNode({ listen: [] })
        nodes.push(dialer)
        await withDeadline(dialer.dial(node.getMultiaddrs()[0]), 5_000, 'a dial')
      }

      await until(() => node.getConnections().length === 3, 5_000, 'the node holding three connections')
      const inbound = node.getConnections()
      const listeners: Listener[] = (node as any).components.transportManager.getListeners()

      await withDeadline(Promise.all(listeners.map(async listener => listener.close())), 2_000, 'close()')

      // as with @libp2p/tcp and upstream: a connection whose socket is gone
      // is not left looking open to libp2p after close() resolves
      expect(inbound.map(connection => connection.status)).to.not.include('open')
      expect(node.getConnections()).to.be.empty()
    } finally {
      await Promise.all(nodes.map(async node => node.stop()))
    }
  })

  it('stays bounded by closeTimeout, and aborts the connection, should a connection never report its close', async () => {
    const node = await createNode({ init: { closeTimeout: 200 } })
    const dialer = await createNode({ listen: [] })

    try {
      await withDeadline(dialer.dial(node.getMultiaddrs()[0]), 5_000, 'a dial')
      await until(() => node.getConnections().length === 1, 5_000, 'the node holding the connection')
      const [connection] = node.getConnections()
      // stand-in for a close event lost below us: the connection's own
      // MultiaddrConnection swallows its 'close'
      const maConn = (connection as any).maConn
      const dispatch = maConn.dispatchEvent.bind(maConn)
      maConn.dispatchEvent = (evt: Event) => evt.type === 'close' ? true : dispatch(evt)
      const listeners: Listener[] = (node as any).components.transportManager.getListeners()

      const started = Date.now()
      await withDeadline(Promise.all(listeners.map(async listener => listener.close())), 2_000, 'close()')

      expect(Date.now() - started).to.be.at.least(150)
      expect(connection.status).to.not.equal('open')
    } finally {
      await Promise.all([node.stop(), dialer.stop()])
    }
  })

  it('terminates sockets that keep arriving while it closes', async () => {
    ({ listener } = bareListener())
    await listener.listen(LOOPBACK_WS)
    const port = getNetConfig(listener.getAddrs()[0]).port ?? 0

    // a stream of connection attempts that goes on across the close
    const sockets: net.Socket[] = []
    let connecting = true
    const connectMore = (): void => {
      if (!connecting) {
        return
      }

      const socket = net.connect({ host: '127.0.0.1', port })
      socket.on('error', () => {})
      socket.once('connect', connectMore)
      socket.once('error', () => { connecting = false })
      sockets.push(socket)
    }

    connectMore()
    connectMore()
    await until(() => totalOf(listener?.socketCounts() ?? {}) >= 10, 5_000, 'ten sockets tracked')

    await withDeadline(listener.close(), 2_000, 'close()')
    connecting = false

    expect(totalOf(listener.socketCounts())).to.equal(0)
    await withDeadline(Promise.all(sockets.map(closedByServer)), 2_000, 'every client socket closing')
  })

  it('holds what it held before once 1000 connections have come and gone', async () => {
    const bare = bareListener()
    listener = bare.listener
    await listener.listen(LOOPBACK_WS)
    const ma = listener.getAddrs()[0]

    // every long-lived emitter the listener owns or listens to
    const internals = listener as any
    const emitters = [internals.server, internals.http, internals.upgrades.wsServer]
    const listenerTotal = (): number =>
      emitters.reduce((total, emitter) => total + emitter.eventNames().reduce((sum: number, name: string) => sum + emitter.listenerCount(name), 0), 0) +
      bare.events.listenerCount('certificate:provision') + bare.events.listenerCount('certificate:renew')
    const before = listenerTotal()

    for (let i = 0; i < 1000; i++) {
      const client = await upgradedClient(ma)
      client.terminate()
      await closedByServer(client)
    }

    await until(() => totalOf(listener?.socketCounts() ?? {}) === 0, 5_000, 'every socket released')
    expect(bare.upgrading).to.have.lengthOf(1000)
    expect(listenerTotal()).to.equal(before)
  })
})
