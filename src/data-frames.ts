import { randomFillSync } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

/**
 * Binary data frames (RFC 6455 section 5.2) written straight to the socket
 * under a `ws` WebSocket.
 *
 * `ws.send()` takes one buffer per message, so the pieces noise hands over
 * for one frame (length prefix, ciphertext, tag) had to be joined into a new
 * buffer first, and a client then copies that buffer once more while masking
 * it. Here a client masks the pieces into the frame's own buffer (one copy),
 * and a server writes the pieces as they are behind the header (no copy),
 * as `@libp2p/tcp` writes them.
 *
 * Only for a `ws` WebSocket that is open and negotiated no extension: `ws`
 * then writes each frame to the socket at once, so frames written here and
 * frames `ws` writes (pings, pongs, the close frame) never interleave
 */

type Mask = (source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number) => void

/**
 * Below this many bytes a JavaScript loop masks faster than a call into
 * `bufferutil`, as `ws` measured
 */
const NATIVE_MASK_FROM = 48

/**
 * A server's message this small is copied behind its header: one write costs
 * less than a write per piece
 */
const COPY_UP_TO = 1024

/**
 * A client's frames up to this size (the largest message we send, one noise
 * frame and its length prefix, behind the largest header) are built in
 * buffers used again once the kernel has taken them: a fresh 64 KiB buffer
 * per frame costs page faults when it is first written and garbage
 * collection after, more than the masking itself (profiled)
 */
const REUSED_FRAME_SIZE = 65_537 + 14

/**
 * Smaller frames come from Node.js's own pool of small buffers
 */
const REUSED_FRAME_ABOVE = 4096

/**
 * How many written frame buffers are kept for the next frames, across all
 * connections: 4 MiB at most, what one connection may have waiting at the
 * default `maxBufferedAmount`. A client writing at full speed has that many
 * in flight before the first is written
 */
const SPARE_FRAMES = 64

const spareFrames: Uint8Array[] = []

/**
 * Masking keys drawn from the system's random source per batch, as `ws` does
 */
const KEY_POOL_SIZE = 8192

const keyPool = new Uint8Array(KEY_POOL_SIZE)
let keyOffset = KEY_POOL_SIZE

/**
 * The key rotated to where a piece starts in the payload
 */
const rotated = new Uint8Array(4)

const jsMask: Mask = (source, mask, output, offset, length) => {
  for (let i = 0; i < length; i++) {
    output[offset + i] = source[i] ^ mask[i & 3]
  }
}

const nativeMask: Mask = loadNativeMask() ?? jsMask

/**
 * `bufferutil` is an optional dependency, and `ws`'s environment variable
 * that turns it off turns it off here too
 */
function loadNativeMask (): Mask | undefined {
  if (process.env.WS_NO_BUFFER_UTIL != null && process.env.WS_NO_BUFFER_UTIL !== '') {
    return
  }

  try {
    const bufferUtil = createRequire(import.meta.url)('bufferutil')

    return typeof bufferUtil.mask === 'function' ? bufferUtil.mask : undefined
  } catch {
    // not installed: masking in JavaScript works, only slower
  }
}

function mask (source: Uint8Array, key: Uint8Array, output: Uint8Array, offset: number): void {
  if (source.byteLength < NATIVE_MASK_FROM) {
    jsMask(source, key, output, offset, source.byteLength)
  } else {
    nativeMask(source, key, output, offset, source.byteLength)
  }
}

/**
 * Four unpredictable bytes, as RFC 6455 section 5.3 asks of a client
 */
function nextKey (): Uint8Array {
  if (keyOffset === KEY_POOL_SIZE) {
    randomFillSync(keyPool)
    keyOffset = 0
  }

  keyOffset += 4

  return keyPool.subarray(keyOffset - 4, keyOffset)
}

function headerLength (length: number, masked: boolean): number {
  let extended = 0

  if (length > 65_535) {
    extended = 8
  } else if (length > 125) {
    extended = 2
  }

  return 2 + extended + (masked ? 4 : 0)
}

/**
 * FIN, opcode 2 (binary) and the payload length; returns where the masking
 * key or the payload goes
 */
function writeHeader (frame: Uint8Array, length: number, masked: boolean): number {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  const maskBit = masked ? 0x80 : 0

  frame[0] = 0x82

  if (length > 65_535) {
    frame[1] = maskBit | 127
    view.setUint32(2, Math.floor(length / 2 ** 32))
    view.setUint32(6, length >>> 0)
    return 10
  }

  if (length > 125) {
    frame[1] = maskBit | 126
    view.setUint16(2, length)
    return 4
  }

  frame[1] = maskBit | length
  return 2
}

/**
 * Mask `pieces` one after the other into `frame` from `offset`, the key
 * rotated for a piece that starts off a multiple of four bytes
 */
function maskInto (frame: Uint8Array, offset: number, pieces: Uint8Array[], key: Uint8Array): void {
  let start = 0

  for (const piece of pieces) {
    if ((start & 3) === 0) {
      mask(piece, key, frame, offset + start)
    } else {
      for (let i = 0; i < 4; i++) {
        rotated[i] = key[(start + i) & 3]
      }

      mask(piece, rotated, frame, offset + start)
    }

    start += piece.byteLength
  }
}

function copyInto (frame: Uint8Array, offset: number, pieces: Uint8Array[]): void {
  for (const piece of pieces) {
    frame.set(piece, offset)
    offset += piece.byteLength
  }
}

/**
 * Write one binary message holding `pieces` (`length` bytes in all) as a
 * single frame. A client (`masked`) masks them with a fresh key. `cb` runs
 * once the frame has been handed to the kernel, or with the error that
 * stopped it
 */
export function writeDataFrame (socket: Socket, pieces: Uint8Array[], length: number, masked: boolean, cb?: (err?: Error | null) => void): void {
  const header = headerLength(length, masked)

  if (!masked && length > COPY_UP_TO) {
    const frameHeader = Buffer.allocUnsafe(header)
    writeHeader(frameHeader, length, false)

    // one writev for the header and every piece
    socket.cork()
    socket.write(frameHeader)

    for (let i = 0; i < pieces.length; i++) {
      socket.write(pieces[i], i === pieces.length - 1 ? cb : undefined)
    }

    socket.uncork()
    return
  }

  const size = header + length
  const reused = size > REUSED_FRAME_ABOVE && size <= REUSED_FRAME_SIZE ? (spareFrames.pop() ?? Buffer.allocUnsafeSlow(REUSED_FRAME_SIZE)) : undefined
  const frame = reused?.subarray(0, size) ?? Buffer.allocUnsafe(size)
  const offset = writeHeader(frame, length, masked)

  if (masked) {
    const key = nextKey()
    frame.set(key, offset)
    maskInto(frame, offset + 4, pieces, key)
  } else {
    copyInto(frame, offset, pieces)
  }

  if (reused == null) {
    socket.write(frame, cb)
    return
  }

  // once written (or failed) the socket holds the buffer no more
  socket.write(frame, (err) => {
    if (spareFrames.length < SPARE_FRAMES) {
      spareFrames.push(reused)
    }

    cb?.(err)
  })
}
