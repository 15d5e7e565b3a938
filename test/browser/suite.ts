/**
 * The tests the browser suite runs in each browser. A test drives the page's
 * libp2p node through `call` and watches the far side, a Node.js node of ours
 * in a child process, through its reports
 */
import { expect } from 'aegir/chai'
import type { TransportName, PageApi } from './page-api.ts'
import type { RemoteNode } from '../../toolbox/remote-node.ts'
import type { Received } from '../../toolbox/supervisor.ts'

export interface Context {
  /**
   * Call the page's API
   */
  call<K extends keyof PageApi>(name: K, ...args: Parameters<PageApi[K]>): Promise<Awaited<ReturnType<PageApi[K]>>>

  /**
   * The far side every test may share: tests leave it as they found it
   */
  farSide: RemoteNode

  /**
   * A far side of the test's own, to freeze or stall; killed after the test
   */
  ownFarSide(): Promise<RemoteNode>

  /**
   * A figure to print beside the test's result
   */
  note(text: string): void
}

export interface BrowserTest {
  name: string
  run(context: Context): Promise<void>
}

const ECHO_BYTES = 4 * 1024 * 1024

// libp2p gives each connection 500 ms to close when the node stops; a stop
// that does not wait for an unresponsive peer takes a few ms
const STOP_BOUND = 250

// a reset reaches the far side in one round trip over loopback; the bound only
// tells it apart from the far side noticing much later (inactivity, 120 s)
const RESET_BOUND = 1_000

// how long the far side may take to report what a test waits for
const REPORT_TIMEOUT = 5_000

// how long the far side may take to run a command (stall, unstall)
const COMMAND_TIMEOUT = 10_000

/**
 * Data the held stream sends once the far side no longer reads: less than
 * yamux's initial window, so that none of it waits in the stream itself and
 * a close of the stream has nothing to wait for
 */
const UNREAD_BYTES = 64 * 1024

function peerIdOf (addr: string): string {
  return addr.slice(addr.lastIndexOf('/p2p/') + 5)
}

/**
 * The far side's first report of `type` (see RemoteNode) about the page's
 * node, `me`, that no earlier wait took
 */
async function reportAbout ({ child }: RemoteNode, type: string, me: string): Promise<Received> {
  return child.expect(type, REPORT_TIMEOUT, report => report.remotePeer === me)
}

/**
 * Echo 4 MiB over our transport with a small `maxBufferedAmount`, so that
 * writing waits on the `bufferedAmount` poll
 */
function echoTest (maxBufferedAmount: number): BrowserTest {
  return {
    name: `echoes 4 MiB both ways with maxBufferedAmount ${maxBufferedAmount}`,
    run: async ({ call, farSide, note }) => {
      await call('start', { transport: 'ours', maxBufferedAmount })
      await call('dial', farSide.addr)
      const result = await call('echo', ECHO_BYTES)

      expect(result.receivedBytes).to.equal(ECHO_BYTES)
      expect(result.intact, 'the bytes that came back are the bytes sent').to.be.true()
      expect(result.polls, 'writes that waited on the bufferedAmount poll').to.be.greaterThan(0)
      expect(result.pollTimerLeft, 'a poll timer left pending').to.be.false()
      note(`${Math.round(result.ms)} ms, ${result.polls} polls`)
    }
  }
}

type Unresponsive = 'frozen' | 'stalled'

/**
 * Connect to a far side of our own with an open stream, make the far side
 * unresponsive, write to it and stop the page's node. Resolves with how long
 * `node.stop()` took. Our transport is then checked to have closed the
 * connection: once the far side reads again, it sees the close
 */
async function stopWithUnresponsiveFarSide ({ call, ownFarSide }: Context, transport: TransportName, how: Unresponsive): Promise<number> {
  const farSide = await ownFarSide()
  const me = await call('start', { transport })
  await call('dial', farSide.addr)
  await call('holdStream')

  if (how === 'frozen') {
    farSide.child.freeze()
    await farSide.child.frozen(REPORT_TIMEOUT)
  } else {
    await farSide.child.call('stall', {}, COMMAND_TIMEOUT)
  }

  await call('write', UNREAD_BYTES)
  const ms = await call('stop')

  if (transport === 'ours') {
    if (how === 'frozen') {
      farSide.child.thaw()
    } else {
      await farSide.child.call('unstall', {}, COMMAND_TIMEOUT)
    }

    await reportAbout(farSide, 'connection-closed', me)
  }

  return ms
}

function stopTest (how: Unresponsive): BrowserTest {
  const what = how === 'frozen' ? 'frozen (SIGSTOP)' : 'stalled (alive, not reading)'

  return {
    name: `node.stop() with the far side ${what} resolves within ${STOP_BOUND} ms`,
    run: async (context) => {
      const ours = await stopWithUnresponsiveFarSide(context, 'ours', how)
      // upstream's figure is printed, not judged
      const upstream = await stopWithUnresponsiveFarSide(context, 'upstream', how)

      context.note(`ours ${ours.toFixed(1)} ms, upstream @libp2p/websockets ${upstream.toFixed(1)} ms`)
      expect(ours).to.be.lessThan(STOP_BOUND)
    }
  }
}

export const TESTS: BrowserTest[] = [{
  name: 'dials the far side\'s /ws address',
  run: async ({ call, farSide }) => {
    const me = await call('start', { transport: 'ours' })
    const remote = await call('dial', farSide.addr)

    expect(remote).to.equal(peerIdOf(farSide.addr))
    await reportAbout(farSide, 'connection-opened', me)
  }
},
echoTest(16 * 1024),
echoTest(1024),
{
  name: 'connection.close() is seen by the far side as a graceful close',
  run: async ({ call, farSide, note }) => {
    const me = await call('start', { transport: 'ours' })
    await call('dial', farSide.addr)
    await call('holdStream')
    const ms = await call('close')

    const stream = await reportAbout(farSide, 'echo-stream-closed', me)
    const connection = await reportAbout(farSide, 'connection-closed', me)

    expect(stream.status, 'how the far side\'s stream ended').to.equal('closed')
    expect(stream.error, 'the error the far side\'s stream ended with').to.be.undefined()
    expect(connection.status, 'how the far side\'s connection ended').to.equal('closed')
    expect(connection.error, 'the error the far side\'s connection ended with').to.be.undefined()
    note(`close() ${ms.toFixed(1)} ms`)
  }
}, {
  name: `connection.abort() is seen by the far side as a reset within ${RESET_BOUND} ms`,
  run: async ({ call, farSide, note }) => {
    const me = await call('start', { transport: 'ours' })
    await call('dial', farSide.addr)
    await call('holdStream')

    const start = Date.now()
    await call('abort')
    const stream = await reportAbout(farSide, 'echo-stream-closed', me)
    await reportAbout(farSide, 'connection-closed', me)
    const ms = Date.now() - start

    expect(stream.status, 'how the far side\'s stream ended').to.equal('reset')
    expect(ms).to.be.lessThan(RESET_BOUND)
    note(`far side saw it in ${ms} ms`)
  }
},
stopTest('frozen'),
stopTest('stalled')
]
