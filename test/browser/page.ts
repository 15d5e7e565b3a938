/**
 * The browser side of the browser suite, bundled by the runner with esbuild
 * for the browser platform. It imports the transport by the package's name,
 * which resolves to dist/ with the `browser` field applied, as a user's
 * bundler does
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { webSockets } from '@cleanstop/libp2p-websockets'
import { webSockets as upstreamWebSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { pEvent } from 'p-event'
import { equals } from 'uint8arrays/equals'
import { ECHO_PROTOCOL, echoOnConnection } from '../../toolbox/echo.ts'
import { prng } from '../fixtures/prng.ts'
import { PAGE_API } from './page-api.ts'
import type { EchoResult, PageApi, StartOptions } from './page-api.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'

// each wait in the page has its own deadline, shorter than the runner's
const ECHO_TIMEOUT = 30_000
const STEP_TIMEOUT = 10_000

/**
 * What the page reads of our MultiaddrConnection beyond the libp2p
 * interfaces: the poll that stands in for 'drain' where there is no socket
 */
interface PollingMaConn {
  pollBufferedAmount(): void
  bufferedAmountPoll?: unknown
}

let node: Libp2p | undefined
let transport: StartOptions['transport'] = 'ours'
let connection: Connection | undefined
let held: Stream | undefined
let polls = 0

function current<T> (value: T | undefined, what: string): T {
  if (value == null) {
    throw new Error(`no ${what} in the page`)
  }

  return value
}

/**
 * Count the times our connection falls back to polling `bufferedAmount`. An
 * own property shadows the prototype's method the connection calls
 */
function instrument (conn: Connection): void {
  polls = 0

  if (transport !== 'ours') {
    return
  }

  const maConn: PollingMaConn = (conn as any).maConn

  if (typeof maConn?.pollBufferedAmount !== 'function') {
    throw new Error('the connection has no pollBufferedAmount(): the transport changed, the page must follow')
  }

  const poll = maConn.pollBufferedAmount

  maConn.pollBufferedAmount = function (this: PollingMaConn) {
    polls++
    poll.call(this)
  }
}

function pollTimerLeft (conn: Connection): boolean {
  return transport === 'ours' && (conn as any).maConn.bufferedAmountPoll != null
}

const api: PageApi = {
  async start (options) {
    transport = options.transport
    const init = { maxBufferedAmount: options.maxBufferedAmount }

    node = await createLibp2p({
      transports: [
        options.transport === 'ours' ? webSockets(init) : upstreamWebSockets(init)
      ],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // libp2p's browser default refuses /ws and private addresses; the far
      // side is on 127.0.0.1 without TLS
      connectionGater: {
        denyDialMultiaddr: () => false
      },
      // its pings would be traffic of their own in the middle of a test
      connectionMonitor: { enabled: false }
    })

    return node.peerId.toString()
  },

  async dial (addr) {
    connection = await current(node, 'node').dial(multiaddr(addr), { signal: AbortSignal.timeout(STEP_TIMEOUT) })
    instrument(connection)

    return connection.remotePeer.toString()
  },

  async echo (bytes) {
    const conn = current(connection, 'connection')
    const data = prng(bytes).bytes(bytes)
    const start = performance.now()
    const received = await echoOnConnection(conn, data, { signal: AbortSignal.timeout(ECHO_TIMEOUT) })
    const result: EchoResult = {
      intact: equals(received, data),
      receivedBytes: received.byteLength,
      ms: performance.now() - start,
      polls,
      pollTimerLeft: pollTimerLeft(conn)
    }

    return result
  },

  async holdStream () {
    const signal = AbortSignal.timeout(STEP_TIMEOUT)
    const stream = await current(connection, 'connection').newStream(ECHO_PROTOCOL, { signal })
    held = stream

    // one message back shows the far side reads and answers on this stream
    const answered = pEvent(stream, 'message', { rejectionEvents: ['close'], signal })
    stream.send(new Uint8Array(1024))
    await answered

    // whatever else comes back is read and dropped
    stream.addEventListener('message', () => {})
  },

  async write (bytes) {
    current(held, 'held stream').send(new Uint8Array(bytes))
  },

  async close () {
    const start = performance.now()
    await current(connection, 'connection').close({ signal: AbortSignal.timeout(STEP_TIMEOUT) })

    return performance.now() - start
  },

  async abort () {
    current(connection, 'connection').abort(new Error('aborted by the browser suite'))
  },

  async stop () {
    const start = performance.now()
    await current(node, 'node').stop()
    const ms = performance.now() - start
    forget()

    return ms
  },

  async reset () {
    const stopping = node?.stop()
    forget()
    await stopping
  }
}

function forget (): void {
  node = undefined
  connection = undefined
  held = undefined
}

Object.assign(globalThis, { [PAGE_API]: api })
