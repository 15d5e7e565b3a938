import { createHash } from 'node:crypto'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { multiaddrToUri } from '@multiformats/multiaddr-to-uri'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { pEvent } from 'p-event'
import { WebSocket } from 'ws'
import { webSockets } from '../src/index.ts'
import { webSocketToMaConn } from '../src/websocket-to-conn.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { recordingUpgrader } from './fixtures/recording-upgrader.ts'
import { watchTimers } from './fixtures/timers.ts'
import type { Listener, MultiaddrConnection } from '@libp2p/interface'
import type { Hash } from 'node:crypto'
import type { Socket } from 'node:net'

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 20_000

/**
 * What the writer hands to `send()` in turn: up to one noise frame's worth,
 * and pieces small enough to leave the socket's own buffer under its 64 KiB
 * high-water mark, where Node.js emits no 'drain'
 */
const CHUNK_SIZES = [64 * 1024, 100, 10 * 1024, 1000, 33 * 1024, 1]

const LARGEST_CHUNK = Math.max(...CHUNK_SIZES)

/**
 * How much a fast or slow reader receives in all, and how much a frozen
 * reader receives after it resumes
 */
const PAYLOAD = 1024 * 1024

/**
 * A frozen reader stops after this much
 */
const FREEZE_AFTER = 256 * 1024

/**
 * WebSocket framing per message at most: a 14-byte header per 64 KiB message
 * of a chunk
 */
const FRAMING = 64

const MAX_BUFFERED_AMOUNTS = [1, 1024, 16 * 1024, 64 * 1024 - 1, 64 * 1024, 4 * 1024 * 1024]

type Reader = 'fast' | 'slow' | 'frozen then resumed'

const READERS: Reader[] = ['fast', 'slow', 'frozen then resumed']

/**
 * Who writes: the dialer's connection, the listener's connection, or a
 * dialer's connection whose socket cannot be reached, as in a browser, so
 * that writing resumes by polling `bufferedAmount`
 */
type Writer = 'outbound' | 'inbound' | 'outbound without a reachable socket (the browser path)'

const WRITERS: Writer[] = ['outbound', 'inbound', 'outbound without a reachable socket (the browser path)']

interface Pair {
  writer: MultiaddrConnection
  reader: MultiaddrConnection

  /**
   * The socket under the writer's WebSocket, to see whether the kernel took
   * everything written
   */
  writerSocket: Socket
}

interface WriterState {
  written: number
  hash: Hash
  waitingForDrain: boolean

  /**
   * Most bytes seen waiting to be written on our side, in libp2p's queue and
   * in the WebSocket's buffer, after any send
   */
  largestPending: number

  /**
   * Stop once this many bytes are written
   */
  stopAt: number
}

interface ReaderState {
  frozen: boolean

  received: number
  hash: Hash
  largestReadBuffer: number
}

function websocketOf (maConn: MultiaddrConnection): WebSocket {
  return (maConn as any).websocket
}

function pendingOf (maConn: MultiaddrConnection): number {
  return maConn.writeBufferLength + websocketOf(maConn).bufferedAmount
}

/**
 * Bytes that are the same on every run and differ from chunk to chunk, so a
 * lost, duplicated or reordered chunk changes the hash
 */
function chunkAt (offset: number, index: number): Uint8Array {
  const chunk = new Uint8Array(CHUNK_SIZES[index % CHUNK_SIZES.length])

  for (let i = 0; i < chunk.byteLength; i++) {
    chunk[i] = ((offset + i) * 2654435761) >>> 24
  }

  return chunk
}

async function write (writer: MultiaddrConnection, state: WriterState): Promise<void> {
  for (let index = 0; state.written < state.stopAt; index++) {
    const chunk = chunkAt(state.written, index)
    state.hash.update(chunk)
    state.written += chunk.byteLength

    const canSendMore = writer.send(chunk)
    state.largestPending = Math.max(state.largestPending, pendingOf(writer))

    if (!canSendMore) {
      state.waitingForDrain = true
      // the 'drain' event, as muxers wait for it: `onDrain()` of
      // @libp2p/utils 7.4 resolves at once after the first drain
      await withDeadline(pEvent(writer, 'drain', { rejectionEvents: ['close'] }), DEADLINE, 'drain')
      state.waitingForDrain = false
    }
  }
}

function read (reader: MultiaddrConnection, kind: Reader): ReaderState {
  const state: ReaderState = {
    frozen: false,
    received: 0,
    hash: createHash('sha256'),
    largestReadBuffer: 0
  }

  reader.addEventListener('message', (evt) => {
    for (const buf of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
      state.hash.update(buf)
      state.received += buf.byteLength
    }

    state.largestReadBuffer = Math.max(state.largestReadBuffer, reader.readBufferLength)

    if (kind === 'slow') {
      reader.pause()
      setTimeout(() => { reader.resume() }, 1)
    }

    if (kind === 'frozen then resumed' && state.received >= FREEZE_AFTER && !state.frozen) {
      state.frozen = true
      reader.pause()
    }
  })

  return state
}

describe('backpressure', function () {
  this.timeout(60_000)

  let listener: Listener | undefined
  let maConns: MultiaddrConnection[]

  beforeEach(() => {
    maConns = []
  })

  afterEach(async () => {
    for (const maConn of maConns) {
      maConn.abort(new Error('Test over'))
    }

    await listener?.close()
    listener = undefined
  })

  async function connect (writer: Writer, maxBufferedAmount: number): Promise<Pair> {
    const init = { maxBufferedAmount, bufferedAmountPollInterval: 1 }
    const transport = webSockets(init)({
      logger: defaultLogger(),
      events: new TypedEventEmitter()
    })
    const upgrader = recordingUpgrader()
    listener = transport.createListener({ upgrader: upgrader.upgrader })
    await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
    const [address] = listener.getAddrs()

    let outbound: MultiaddrConnection
    let outboundSocket: Socket

    if (writer === 'outbound without a reachable socket (the browser path)') {
      const websocket = new WebSocket(multiaddrToUri(address))
      websocket.binaryType = 'nodebuffer'
      websocket.on('error', () => {})
      await withDeadline(new Promise(resolve => websocket.once('open', resolve)), DEADLINE, 'the WebSocket opening')
      outboundSocket = (websocket as any)._socket
      // what a browser's WebSocket lacks: `terminate`, `pause`, `resume`, and
      // a socket to listen to
      outbound = webSocketToMaConn({
        websocket: {
          binaryType: 'nodebuffer',
          get bufferedAmount () { return websocket.bufferedAmount },
          get readyState () { return websocket.readyState },
          send: (data: Uint8Array) => { websocket.send(data) },
          close: (code?: number, reason?: string) => { websocket.close(code, reason) },
          addEventListener: websocket.addEventListener.bind(websocket) as any,
          removeEventListener: websocket.removeEventListener.bind(websocket) as any
        },
        remoteAddr: address,
        direction: 'outbound',
        log: defaultLogger().forComponent('test:backpressure'),
        ...init
      })
    } else {
      outbound = (await transport.dial(address, {
        upgrader: upgrader.upgrader,
        signal: AbortSignal.timeout(DEADLINE)
      })) as unknown as MultiaddrConnection
      outboundSocket = (outbound as any).socket
    }

    await until(() => upgrader.inbound.length === 1, DEADLINE, 'the listener accepting the connection')
    const inbound = upgrader.inbound[0]
    maConns.push(outbound, inbound)

    return writer === 'inbound'
      ? { writer: inbound, reader: outbound, writerSocket: (inbound as any).socket }
      : { writer: outbound, reader: inbound, writerSocket: outboundSocket }
  }

  for (const writerKind of WRITERS) {
    describe(`${writerKind} writer`, () => {
      for (const maxBufferedAmount of MAX_BUFFERED_AMOUNTS) {
        for (const readerKind of READERS) {
          it(`delivers every byte to a ${readerKind} reader with maxBufferedAmount ${maxBufferedAmount}`, async () => {
            const { writer, reader, writerSocket } = await connect(writerKind, maxBufferedAmount)
            const timers = watchTimers(/src[\\/]websocket-to-conn\./)
            const received = read(reader, readerKind)
            const sent: WriterState = {
              written: 0,
              hash: createHash('sha256'),
              waitingForDrain: false,
              largestPending: 0,
              stopAt: readerKind === 'frozen then resumed' ? Infinity : PAYLOAD
            }
            // one send() may add a whole chunk to a buffer just under the limit
            const bound = maxBufferedAmount + LARGEST_CHUNK + FRAMING
            const writing = write(writer, sent)

            if (readerKind === 'frozen then resumed') {
              // frozen: the kernel's buffers are full and the writer waits
              await until(() => received.frozen && sent.waitingForDrain && writerSocket.writableLength > 0, DEADLINE, 'the writer waiting on a frozen reader')
              expect(pendingOf(writer)).to.be.at.most(bound)
              sent.stopAt = sent.written + PAYLOAD
              reader.resume()
            }

            await withDeadline(writing, DEADLINE, 'the writer finishing')
            await until(() => received.received >= sent.written, DEADLINE, 'the reader receiving everything')

            expect(received.received).to.equal(sent.written)
            expect(received.hash.digest('hex')).to.equal(sent.hash.digest('hex'))
            expect(sent.largestPending).to.be.at.most(bound)

            try {
              await withDeadline(Promise.all([writer.close(), reader.close()]), DEADLINE, 'both ends closing')
            } finally {
              timers.stop()
            }
            expect(timers.pending()).to.deep.equal([])
          })
        }
      }
    })
  }
})
