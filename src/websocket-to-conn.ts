import { InvalidMessageError, TimeoutError } from '@libp2p/interface'
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import { allocUnsafe } from 'uint8arrays/alloc'
import { BUFFERED_AMOUNT_POLL_INTERVAL, CLOSE_TIMEOUT, MAX_BUFFERED_AMOUNT } from './constants.ts'
import { writeDataFrame } from './data-frames.ts'
import { resetSocket, terminateWebSocket } from './utils.ts'
import type { AbortOptions, MultiaddrConnection } from '@libp2p/interface'
import type { AbstractMultiaddrConnectionInit, SendResult } from '@libp2p/utils'
import type { Socket } from 'node:net'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * Largest message we send: one noise frame and its length prefix, the most
 * libp2p peers send in one WebSocket message
 */
const MAX_MESSAGE = 65_537

const OPEN = 1
const CLOSED = 3

/**
 * What this module needs of a WebSocket: the browser's and `ws`'s both fit.
 * The optional members but `extensions` exist on `ws` only, as do the
 * `NodeEvents` below
 */
export interface WebSocketLike {
  binaryType: string
  readonly bufferedAmount: number
  readonly readyState: number
  readonly extensions?: string
  send(data: Uint8Array, cb?: (err?: Error) => void): void
  close(code?: number, reason?: string): void
  addEventListener(type: string, listener: (evt: any) => void, options?: { once?: boolean }): void
  removeEventListener(type: string, listener: (evt: any) => void): void
  terminate?(): void
  pause?(): void
  resume?(): void
}

/**
 * `ws`'s own events, which it emits with no event object around them
 */
interface NodeEvents {
  on(type: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown
  on(type: 'error', listener: (err: Error) => void): unknown
  off(type: 'message', listener: (data: unknown, isBinary: boolean) => void): unknown
}

function hasNodeEvents (websocket: WebSocketLike): websocket is WebSocketLike & NodeEvents {
  return typeof (websocket as Partial<NodeEvents>).on === 'function'
}

export interface WebSocketMultiaddrConnectionInit extends Omit<AbstractMultiaddrConnectionInit, 'name'> {
  websocket: WebSocketLike

  /**
   * The TCP or TLS socket under the WebSocket, where there is one to reach
   * (Node.js). It gives drain events and the inactivity timeout
   */
  socket?: Socket

  maxBufferedAmount?: number
  bufferedAmountPollInterval?: number
  closeTimeout?: number

  /**
   * Aborted once the node starts to stop: a close from then on does not wait
   * for the peer's closing handshake. Read as the connection closes
   */
  stopping?: AbortSignal
}

class WebSocketMultiaddrConnection extends AbstractMultiaddrConnection {
  private readonly websocket: WebSocketLike
  private readonly socket?: Socket
  private readonly maxBufferedAmount: number
  private readonly bufferedAmountPollInterval: number
  private readonly closeTimeout: number
  private readonly stopping?: AbortSignal
  private bufferedAmountPoll?: ReturnType<typeof setTimeout>

  /**
   * The socket our data frames go to directly: where there is one, and the
   * WebSocket says (as `ws` does) that it negotiated no extension that would
   * transform them
   */
  private readonly frameSocket?: Socket

  /**
   * A client masks what it sends (RFC 6455 section 5.3), a server does not
   */
  private readonly masked: boolean

  private readonly onWsMessage?: (data: unknown, isBinary: boolean) => void
  private readonly onMessageEvent?: (evt: { data: unknown }) => void

  constructor (init: WebSocketMultiaddrConnectionInit) {
    super(init)

    this.websocket = init.websocket
    this.socket = init.socket
    this.maxBufferedAmount = init.maxBufferedAmount ?? MAX_BUFFERED_AMOUNT
    this.bufferedAmountPollInterval = init.bufferedAmountPollInterval ?? BUFFERED_AMOUNT_POLL_INTERVAL
    this.closeTimeout = init.closeTimeout ?? CLOSE_TIMEOUT
    this.stopping = init.stopping
    this.frameSocket = init.socket != null && init.websocket.extensions === '' ? init.socket : undefined
    this.masked = init.direction === 'outbound'

    // `ws` emits 'error' for protocol violations by the peer (bad frames,
    // oversize messages): it has already sent the right close code, and the
    // socket's owner drops the peer (`dropOnProtocolError`), but an 'error'
    // nobody listens to would crash the process
    const onError = (err: unknown): void => {
      this.log('websocket error - %e', err)
    }

    // `ws`'s messages and errors come through its own events: its
    // `addEventListener` wraps each listener (memory per connection), and
    // builds an event object per message
    if (hasNodeEvents(this.websocket)) {
      this.onWsMessage = (data, isBinary) => {
        this.onMessage(isBinary ? data : String(data))
      }
      this.websocket.on('message', this.onWsMessage)
      this.websocket.on('error', onError)
    } else {
      this.onMessageEvent = (evt) => {
        this.onMessage(evt.data)
      }
      this.websocket.addEventListener('message', this.onMessageEvent)
      this.websocket.addEventListener('error', (evt) => { onError(evt?.error ?? evt) })
    }

    this.websocket.addEventListener('close', (evt) => {
      this.log('closed - code %d, reason "%s", wasClean %s', evt.code, evt.reason, evt.wasClean)
      this.stopPolling()

      if (this.onWsMessage != null && hasNodeEvents(this.websocket)) {
        this.websocket.off('message', this.onWsMessage)
      } else if (this.onMessageEvent != null) {
        this.websocket.removeEventListener('message', this.onMessageEvent)
      }

      // only a connection still open can be reset by the peer: one we were
      // closing ends as closed even if we had to terminate it, one we aborted
      // stays aborted
      if (this.status === 'open' && evt.wasClean !== true) {
        this.onRemoteReset()
        return
      }

      this.onTransportClosed()
    }, { once: true })

    this.onSent = this.onSent.bind(this)

    if (this.socket != null) {
      // `ws` clears the socket's timeout when it takes the socket, so this
      // must happen after the WebSocket is open
      if (init.inactivityTimeout !== 0) {
        this.socket.setTimeout(this.inactivityTimeout)
        this.socket.once('timeout', () => {
          this.abort(new TimeoutError(`No traffic for ${this.inactivityTimeout}ms`))
        })
      }
    }
  }

  private onMessage (data: unknown): void {
    if (data instanceof Uint8Array) {
      this.onData(data)
    } else if (data instanceof ArrayBuffer) {
      this.onData(new Uint8Array(data))
    } else if (typeof data === 'string') {
      this.abort(new InvalidMessageError('Received a text frame, libp2p only uses binary frames'))
    } else {
      this.abort(new InvalidMessageError('Received a binary frame of an unsupported type, binaryType must be "arraybuffer" or "nodebuffer"'))
    }
  }

  sendData (data: Uint8ArrayList): SendResult {
    // while the node stops, libp2p closes connections whose sockets the
    // listener has destroyed already: `ws` would still write to them, and
    // each write builds an ERR_STREAM_DESTROYED error with a stack trace
    if (this.socket?.destroyed !== true) {
      this.sendMessages(data)
    }

    // a socket destroyed under us will never drain, and the connection is
    // closing: waiting would only hold the writer
    const canSendMore = this.socket?.destroyed === true || this.websocket.bufferedAmount < this.maxBufferedAmount

    if (!canSendMore && this.socket == null) {
      this.pollBufferedAmount()
    }

    return {
      sentBytes: data.byteLength,
      canSendMore
    }
  }

  /**
   * Noise hands over each frame in pieces (length prefix, the ciphertext of
   * each buffer it was given, tag). One WebSocket message per noise frame
   * rather than per piece saves a frame header, a write and a receive event
   * per piece, and gives the peer's noise decoder whole frames
   */
  private sendMessages (data: Uint8ArrayList): void {
    const direct = this.frameSocket
    let batch: Uint8Array[] = []
    let batchLength = 0

    const flush = (last: boolean): void => {
      if (batchLength > 0) {
        // the last message's callback runs once everything before it has
        // reached the kernel, which is when `bufferedAmount` goes down. The
        // socket's own 'drain' is no substitute: Node.js emits it only after
        // a write went over the socket's high-water mark (64 KiB), so a
        // smaller `maxBufferedAmount` would wait for it forever
        const onSent = last && this.socket != null ? this.onSent : undefined

        if (direct == null) {
          this.websocket.send(join(batch, batchLength), onSent)
        } else if (this.websocket.readyState === OPEN) {
          writeDataFrame(direct, batch, batchLength, this.masked, onSent)
        }
        // else closing: no data frame may follow a close frame. `ws` would
        // drop it too, after building an error for the callback

        batch = []
        batchLength = 0
      }
    }

    for (const buf of data) {
      // a larger buffer (no encrypter, or one that frames differently) goes
      // in slices, so that no message ever nears a peer's payload limit
      for (let offset = 0; offset < buf.byteLength; offset += MAX_MESSAGE) {
        const piece = buf.byteLength <= MAX_MESSAGE ? buf : buf.subarray(offset, offset + MAX_MESSAGE)

        if (batchLength + piece.byteLength > MAX_MESSAGE) {
          flush(false)
        }

        batch.push(piece)
        batchLength += piece.byteLength
      }
    }

    flush(true)
  }

  sendReset (): void {
    this.stopPolling()

    if (this.socket != null) {
      resetSocket(this.socket)
    }

    terminateWebSocket(this.websocket)
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    this.stopPolling()

    if (this.websocket.readyState === CLOSED) {
      return
    }

    const closed = new Promise<void>(resolve => {
      this.websocket.addEventListener('close', () => { resolve() }, { once: true })
    })

    const terminate = (): void => {
      terminateWebSocket(this.websocket)
    }
    const timer = setTimeout(() => {
      this.log('peer did not complete the closing handshake within %dms, terminating', this.closeTimeout)
      terminate()
    }, this.closeTimeout)
    options?.signal?.addEventListener('abort', terminate, { once: true })

    try {
      // a destroyed socket closes by itself: a close frame would only build
      // an error
      if (this.websocket.readyState === OPEN && this.socket?.destroyed !== true) {
        this.websocket.close(1000)
      }

      // while the node stops, a close is ours alone, as it is for TCP: what
      // we sent (the close frame included) is flushed, the peer's answer is
      // not awaited
      if (this.stopping?.aborted === true) {
        // a browser WebSocket can be neither flushed nor terminated: it
        // finishes the close by itself, and the node need not wait for it
        if (this.socket == null) {
          return
        }

        await this.flushed(this.socket)
        terminate()
      }

      await closed
    } finally {
      clearTimeout(timer)
      options?.signal?.removeEventListener('abort', terminate)
    }
  }

  /**
   * Resolves once the socket has handed everything written to the kernel, or
   * has closed. Ending the socket gives that moment ('finish') whatever is
   * buffered; 'drain' would not come for less than the high-water mark
   */
  private async flushed (socket: Socket): Promise<void> {
    if (socket.destroyed || socket.writableLength === 0) {
      return
    }

    await new Promise<void>(resolve => {
      socket.end(() => { resolve() })
    })
  }

  sendPause (): void {
    this.websocket.pause?.()
  }

  sendResume (): void {
    this.websocket.resume?.()
  }

  /**
   * A message we sent has been handed to the kernel (or failed to be, and the
   * socket is closing): the writer may go on if the buffer is low enough. A
   * 'drain' nobody waits for is ignored
   */
  private onSent (): void {
    if (this.websocket.bufferedAmount < this.maxBufferedAmount) {
      this.safeDispatchEvent('drain')
    }
  }

  private pollBufferedAmount (): void {
    if (this.bufferedAmountPoll != null) {
      return
    }

    const poll = (): void => {
      this.bufferedAmountPoll = undefined

      if (this.websocket.bufferedAmount < this.maxBufferedAmount) {
        this.safeDispatchEvent('drain')
        return
      }

      this.bufferedAmountPoll = setTimeout(poll, this.bufferedAmountPollInterval)
    }

    this.bufferedAmountPoll = setTimeout(poll, this.bufferedAmountPollInterval)
  }

  private stopPolling (): void {
    clearTimeout(this.bufferedAmountPoll)
    this.bufferedAmountPoll = undefined
  }
}

/**
 * One buffer of its own for one message. A small one is not a slice of
 * Node.js's shared 8 KiB pool, which any slice kept alive keeps whole; a large
 * one (never pooled) is not zero-filled first
 */
function join (bufs: Uint8Array[], length: number): Uint8Array {
  if (bufs.length === 1) {
    return bufs[0]
  }

  const joined = length < 4096 ? new Uint8Array(length) : allocUnsafe(length)
  let offset = 0

  for (const buf of bufs) {
    joined.set(buf, offset)
    offset += buf.byteLength
  }

  return joined
}

/**
 * Wrap an open WebSocket as a libp2p MultiaddrConnection
 */
export function webSocketToMaConn (init: WebSocketMultiaddrConnectionInit): MultiaddrConnection {
  return new WebSocketMultiaddrConnection(init)
}
