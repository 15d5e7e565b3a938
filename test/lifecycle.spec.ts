import { AlreadyStartedError, ListenError } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { getNetConfig } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { webSockets } from '../src/index.ts'
import { echo, handleEcho } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { bareListener } from './fixtures/bare-listener.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { muteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import { activeResources, freePort, refused, resourcesAddedSince } from './fixtures/resources.ts'
import type { BareListener } from './fixtures/bare-listener.ts'
import type { HandMadeWebSocketServer as MuteWebSocketServer } from './fixtures/hand-made-websocket-server.ts'
import type { DialTransportOptions, Libp2p, Libp2pEvents, Listener, MultiaddrConnection, Startable, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Bound on every listen(), close(), start() and stop() here: each takes a few
 * milliseconds on loopback
 */
const DEADLINE = 2_000

/**
 * libp2p keeps about a second of its own timers after stop() (its address
 * manager), as a node over `@libp2p/tcp` does: the node tests compare sockets
 * and servers, not timers
 */
const LIBP2P_TIMERS = ['Timeout', 'Immediate']

/**
 * Call `fn` after `ticks` turns of the tick queue, then `microtasks` turns of
 * the microtask queue, from inside those callbacks: awaiting them instead
 * would add microtasks of its own
 */
function later (ticks: number, microtasks: number, fn: () => void): void {
  if (ticks > 0) {
    process.nextTick(() => { later(ticks - 1, microtasks, fn) })
  } else if (microtasks > 0) {
    queueMicrotask(() => { later(0, microtasks - 1, fn) })
  } else {
    fn()
  }
}

/**
 * Moments after listen() at which close() is called. On Node.js 22 and 24 the
 * address is looked up in the next tick and bound there, the server's
 * 'listening' event follows in the tick after, and listen() resumes in a
 * microtask after that: these fall before, between and after each of those
 */
const MOMENTS: Array<[string, (fn: () => void) => void]> = [
  ['in the same tick', fn => { fn() }],
  ['a microtask later', fn => { later(0, 1, fn) }],
  ['a tick later', fn => { later(1, 0, fn) }],
  ['a tick and a microtask later', fn => { later(1, 1, fn) }],
  ['two ticks later', fn => { later(2, 0, fn) }],
  ['three ticks later', fn => { later(3, 0, fn) }],
  ['a turn of the event loop later', fn => { setImmediate(fn) }]
]

function wsAddr (port: number): Multiaddr {
  return multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`)
}

/**
 * Asserts that nothing listens on `port` any more and that no handle the test
 * created is left, once the handles being closed are gone
 */
async function assertNothingLeft (port: number, before: Map<string, number>, ignore: string[] = []): Promise<void> {
  expect(await withDeadline(refused(port), DEADLINE, 'a connect to the port')).to.be.true()
  await until(() => resourcesAddedSince(before, ignore).length === 0, DEADLINE, `no handle left (left: ${resourcesAddedSince(before, ignore).join(', ')})`)
}

describe('listener lifecycle', () => {
  const bares: BareListener[] = []

  afterEach(async () => {
    await Promise.all(bares.map(async bare => bare.listener.close()))
    bares.length = 0
  })

  function newListener (): BareListener {
    const bare = bareListener()
    bares.push(bare)

    return bare
  }

  /**
   * Events the listener dispatched, in order
   */
  function recordEvents (listener: Listener): string[] {
    const seen: string[] = []
    listener.addEventListener('listening', () => { seen.push('listening') })
    listener.addEventListener('close', () => { seen.push('close') })

    return seen
  }

  async function assertClosed (bare: BareListener, port: number, before: Map<string, number>, seen: string[]): Promise<void> {
    expect(seen.filter(event => event === 'close')).to.have.lengthOf(1)
    expect(seen.at(-1)).to.equal('close')
    expect(bare.listener.getAddrs()).to.be.empty()
    expect(bare.events.listenerCount('certificate:provision')).to.equal(0)
    expect(bare.events.listenerCount('certificate:renew')).to.equal(0)
    await assertNothingLeft(port, before)
  }

  for (const [moment, schedule] of MOMENTS) {
    it(`settles listen() and a close() called ${moment}, listening nowhere`, async () => {
      const port = await freePort()
      const before = activeResources()
      const bare = newListener()
      const listener = bare.listener
      const seen = recordEvents(listener)

      const listening = listener.listen(wsAddr(port))
      const closing = new Promise<void>((resolve, reject) => {
        schedule(() => {
          seen.push('close()')
          listener.close().then(resolve, reject)
        })
      })

      await withDeadline(listening, DEADLINE, 'listen()')
      await withDeadline(closing, DEADLINE, 'close()')

      // once close() is called, the listener announces no address
      expect(seen.slice(seen.indexOf('close()'))).to.deep.equal(['close()', 'close'])
      await assertClosed(bare, port, before, seen)
    })
  }

  it('refuses listen() after close() with a ListenError', async () => {
    const port = await freePort()
    const before = activeResources()
    const bare = newListener()
    await bare.listener.close()

    await expect(withDeadline(bare.listener.listen(wsAddr(port)), DEADLINE, 'listen()')).to.eventually.be.rejectedWith(ListenError, 'a closed listener cannot listen again')

    await assertNothingLeft(port, before)
  })

  it('refuses listen() after a listen() and close() with a ListenError', async () => {
    const port = await freePort()
    const before = activeResources()
    const bare = newListener()
    await withDeadline(bare.listener.listen(wsAddr(port)), DEADLINE, 'listen()')
    await withDeadline(bare.listener.close(), DEADLINE, 'close()')

    await expect(withDeadline(bare.listener.listen(wsAddr(port)), DEADLINE, 'listen() again')).to.eventually.be.rejectedWith(ListenError, 'a closed listener cannot listen again')

    await assertNothingLeft(port, before)
  })

  it('refuses a second listen() with an AlreadyStartedError, in the same tick or later', async () => {
    const port = await freePort()
    const before = activeResources()
    const bare = newListener()

    const first = bare.listener.listen(wsAddr(port))
    const second = bare.listener.listen(wsAddr(port))

    await expect(withDeadline(second, DEADLINE, 'the second listen()')).to.eventually.be.rejectedWith(AlreadyStartedError, 'already listening')
    await withDeadline(first, DEADLINE, 'the first listen()')
    await expect(withDeadline(bare.listener.listen(wsAddr(port)), DEADLINE, 'a third listen()')).to.eventually.be.rejectedWith(AlreadyStartedError, 'already listening')

    expect(bare.listener.getAddrs().map(String)).to.deep.equal([wsAddr(port).toString()])
    expect(await withDeadline(refused(port), DEADLINE, 'a connect to the port')).to.be.false()

    await withDeadline(bare.listener.close(), DEADLINE, 'close()')
    await assertNothingLeft(port, before)
  })

  it('rejects listen() on a port in use, may listen elsewhere then, and close() settles', async () => {
    const port = await freePort()
    await newListener().listener.listen(wsAddr(port))
    const otherPort = await freePort()
    const before = activeResources()
    const bare = newListener()

    await expect(withDeadline(bare.listener.listen(wsAddr(port)), DEADLINE, 'listen()')).to.eventually.be.rejected()
      .with.property('code', 'EADDRINUSE')
    expect(bare.listener.getAddrs()).to.be.empty()

    await withDeadline(bare.listener.listen(wsAddr(otherPort)), DEADLINE, 'listen() on a free port')
    expect(bare.listener.getAddrs().map(String)).to.deep.equal([wsAddr(otherPort).toString()])

    await withDeadline(bare.listener.close(), DEADLINE, 'close()')
    await assertNothingLeft(otherPort, before)
  })
})

describe('node lifecycle', () => {
  const nodes: Libp2p[] = []

  afterEach(async () => {
    await Promise.all(nodes.map(async node => node.stop()))
    nodes.length = 0
  })

  it('settles node.stop() called while node.start() is listening, and a stop after leaves nothing', async () => {
    const port = await freePort()
    const before = activeResources()
    let onListen = (): void => {}

    // stop the node the moment its listener starts to listen
    const transport = (components: any): Transport => {
      const inner = webSockets()(components)
      const createListener = inner.createListener.bind(inner)
      inner.createListener = (options) => {
        const listener = createListener(options)
        const listen = listener.listen.bind(listener)
        listener.listen = async (ma) => {
          const listening = listen(ma)
          onListen()
          return listening
        }
        return listener
      }
      return inner
    }

    const node = await createNode({ listen: [wsAddr(port).toString()], transport, config: { start: false } })
    nodes.push(node)
    let stopping: Promise<void> | undefined
    onListen = () => { stopping = Promise.resolve(node.stop()) }

    await withDeadline(node.start(), DEADLINE, 'node.start()')
    expect(stopping).to.not.be.undefined()
    await withDeadline(stopping, DEADLINE, 'node.stop() during start()')

    // libp2p 3.3 ignores a stop() while it starts, whatever the transport
    // (@libp2p/tcp alike): the node is started now, and a stop() stops it
    await withDeadline(node.stop(), DEADLINE, 'node.stop()')

    await assertNothingLeft(port, before, LIBP2P_TIMERS)
  })

  it('listens and dials again after start → stop → start, and leaves nothing once stopped', async () => {
    const before = activeResources()
    const node = await createNode()
    const peer = await createNode()
    nodes.push(node, peer)
    await handleEcho(node)
    await handleEcho(peer)
    const firstPort = getNetConfig(node.getMultiaddrs()[0]).port ?? 0
    const data = new Uint8Array([1, 2, 3, 4])

    await withDeadline(node.stop(), DEADLINE, 'the first node.stop()')
    expect(await withDeadline(refused(firstPort), DEADLINE, 'a connect to the stopped node')).to.be.true()
    await withDeadline(node.start(), DEADLINE, 'node.start() again')

    expect(node.getMultiaddrs()).to.not.be.empty()
    const port = getNetConfig(node.getMultiaddrs()[0]).port ?? 0
    const signal = AbortSignal.timeout(DEADLINE)
    expect(await echo(peer, node.getMultiaddrs()[0], data, { signal })).to.deep.equal(data)
    expect(await echo(node, peer.getMultiaddrs()[0], data, { signal })).to.deep.equal(data)

    await withDeadline(Promise.all([node.stop(), peer.stop()]), DEADLINE, 'both nodes stopping')
    await assertNothingLeft(port, before, LIBP2P_TIMERS)
    expect(await withDeadline(refused(firstPort), DEADLINE, 'a connect to the first port')).to.be.true()
  })
})

describe('transport lifecycle', () => {
  const mutes: MuteWebSocketServer[] = []

  afterEach(async () => {
    await Promise.all(mutes.map(async mute => mute.close()))
    mutes.length = 0
  })

  it('closes without waiting for the peer while the node stops, and waits again once it has restarted', async () => {
    const closeTimeout = 500
    const transport = webSockets({ closeTimeout })({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>()
    }) as Transport & Startable
    // hands the bare connection back, so the test decides when it closes
    const upgrader: Partial<Upgrader> = {
      upgradeOutbound: async (maConn: MultiaddrConnection) => maConn as any
    }

    /**
     * A connection to a peer that never answers our close frame, and how
     * long closing it takes
     */
    const timeClose = async (beforeClose: () => void = () => {}): Promise<number> => {
      const mute = await muteWebSocketServer()
      mutes.push(mute)
      const { port } = new URL(mute.url)
      const maConn = await transport.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`), {
        upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      } as unknown as DialTransportOptions) as unknown as MultiaddrConnection

      beforeClose()
      const start = Date.now()
      await withDeadline(maConn.close(), DEADLINE, 'close()')

      return Date.now() - start
    }

    await transport.start?.()
    expect(await timeClose(() => { void transport.beforeStop?.() })).to.be.below(closeTimeout / 2)
    await transport.stop?.()
    await transport.afterStop?.()

    await transport.start?.()
    expect(await timeClose()).to.be.at.least(closeTimeout - 50)
  })
})
