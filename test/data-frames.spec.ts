/**
 * The data frames we write to the socket ourselves (src/data-frames.ts) must
 * be frames `ws` accepts on the other side, masked by a client with a key of
 * its own per frame, and whole even while the kernel holds many of them
 */
import { createConnection, createServer } from 'node:net'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { WebSocket, WebSocketServer } from 'ws'
import { writeDataFrame } from '../src/data-frames.ts'
import { parseFrames } from '../toolbox/raw-websocket.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import type { AddressInfo, Server, Socket } from 'node:net'
import type { WebSocket as ServerSideWebSocket } from 'ws'

/**
 * A `ws` client and server over loopback, with the socket under each
 */
interface Pair {
  client: WebSocket
  clientSocket: Socket
  server: ServerSideWebSocket
  serverSocket: Socket
}

/**
 * Lengths at every boundary of the header (7 bit, 16 bit, 64 bit length),
 * of the JavaScript and native masks, of the copied and the reused buffers,
 * up to the largest message we send
 */
const LENGTHS = [1, 2, 47, 48, 125, 126, 1024, 1025, 4096, 4097, 65_535, 65_536, 65_537]

function bytes (length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length)

  for (let i = 0; i < length; i++) {
    out[i] = (i * 31 + seed) & 0xff
  }

  return out
}

/**
 * `data` cut where noise cuts a frame (a 2 byte prefix, the body, a 16 byte
 * tag) and once more at an odd offset, so that pieces start off a multiple
 * of four bytes
 */
function cut (data: Uint8Array): Uint8Array[] {
  const cuts = [...new Set([0, 2, 7, data.byteLength - 16, data.byteLength])]
    .filter(at => at >= 0 && at <= data.byteLength)
    .sort((a, b) => a - b)
  const pieces: Uint8Array[] = []

  for (let i = 0; i < cuts.length - 1; i++) {
    if (cuts[i + 1] > cuts[i]) {
      pieces.push(data.subarray(cuts[i], cuts[i + 1]))
    }
  }

  return pieces
}

/**
 * The shortest header of an unmasked frame of `length` bytes
 */
function serverHeaderSize (length: number): number {
  if (length > 65_535) {
    return 10
  }

  if (length > 125) {
    return 4
  }

  return 2
}

function messages (websocket: WebSocket | ServerSideWebSocket): Uint8Array[] {
  const received: Uint8Array[] = []
  websocket.on('message', (data: Buffer) => { received.push(data) })
  return received
}

describe('data frames written straight to the socket', () => {
  let wss: WebSocketServer | undefined
  let raw: Server | undefined
  let pair: Pair | undefined

  async function openPair (): Promise<Pair> {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await pEvent(wss, 'listening')
    const accepted = pEvent<'connection', [ServerSideWebSocket, { socket: Socket }]>(wss, 'connection', { multiArgs: true })
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`)
    let clientSocket: Socket | undefined
    client.once('upgrade', (res) => { clientSocket = res.socket as Socket })
    await withDeadline(pEvent(client, 'open'), 5_000, 'the client open')
    const [server, request] = await withDeadline(accepted, 5_000, 'the server side')

    pair = { client, clientSocket: clientSocket as Socket, server, serverSocket: request.socket }
    return pair
  }

  /**
   * A TCP connection to a peer that records every byte it receives
   */
  async function openRaw (): Promise<{ socket: Socket, received(): Buffer, close(): void }> {
    raw = createServer()
    raw.listen(0, '127.0.0.1')
    await pEvent(raw, 'listening')
    const accepted = pEvent<'connection', Socket>(raw, 'connection')
    const socket = createConnection((raw.address() as AddressInfo).port, '127.0.0.1')
    await withDeadline(pEvent(socket, 'connect'), 5_000, 'the connect')
    const peer = await withDeadline(accepted, 5_000, 'the raw peer')
    const chunks: Buffer[] = []
    peer.on('data', (chunk: Buffer) => { chunks.push(chunk) })

    return {
      socket,
      received: () => Buffer.concat(chunks),
      close: () => {
        socket.destroy()
        peer.destroy()
      }
    }
  }

  /**
   * Write a message of every length in `LENGTHS` with `write`, and check that
   * `receiver` gets each whole
   */
  async function expectWholeAtEveryLength (write: typeof writeDataFrame, socket: Socket, receiver: WebSocket | ServerSideWebSocket, masked: boolean, seed: number): Promise<void> {
    const received = messages(receiver)
    const sent = LENGTHS.map((length, i) => bytes(length, i + seed))

    for (const data of sent) {
      write(socket, cut(data), data.byteLength, masked)
    }

    await until(() => received.length >= sent.length, 5_000, 'every message')

    received.forEach((data, i) => {
      expect(data, `message of ${sent[i].byteLength} bytes`).to.equalBytes(sent[i])
    })
  }

  afterEach(async () => {
    pair?.client.terminate()
    pair?.server.terminate()
    wss?.close()
    raw?.close()
    wss = raw = pair = undefined
  })

  it('a client\'s masked frames reach a ws server whole, at every length and piece boundary', async () => {
    const { clientSocket, server } = await openPair()

    await expectWholeAtEveryLength(writeDataFrame, clientSocket, server, true, 0)
  })

  it('a server\'s unmasked frames reach a ws client whole, at every length and piece boundary', async () => {
    const { client, serverSocket } = await openPair()

    await expectWholeAtEveryLength(writeDataFrame, serverSocket, client, false, 100)
  })

  it('calls back once the frame is written, with the last piece of a server\'s frame', async () => {
    const { clientSocket, serverSocket } = await openPair()
    const calls: string[] = []

    writeDataFrame(clientSocket, [bytes(10, 1)], 10, true, () => { calls.push('client small') })
    writeDataFrame(clientSocket, [bytes(60_000, 1)], 60_000, true, () => { calls.push('client large') })
    writeDataFrame(serverSocket, [bytes(10, 1)], 10, false, () => { calls.push('server small') })
    writeDataFrame(serverSocket, cut(bytes(60_000, 1)), 60_000, false, () => { calls.push('server large') })

    await until(() => calls.length === 4, 5_000, 'four callbacks')
    expect(calls.sort()).to.deep.equal(['client large', 'client small', 'server large', 'server small'])
  })

  it('masks every frame of a client with a key of its own, and sets the mask bit', async () => {
    const { socket, received, close } = await openRaw()

    const data = bytes(64, 7)
    // more frames than one fill of the key pool (2,048 keys), so that a
    // refill happens within the test whatever frames came before it
    const count = 2_100

    for (let i = 0; i < count; i++) {
      writeDataFrame(socket, cut(data), data.byteLength, true)
    }

    // each frame: 2 bytes of header, 4 of key, 64 of payload
    await until(() => received().byteLength >= count * 70, 5_000, 'every frame')
    close()

    const frames = parseFrames(received())
    expect(frames).to.have.lengthOf(count)

    for (const frame of frames) {
      expect(frame.fin).to.be.true()
      expect(frame.opcode).to.equal(2)
      expect(frame.maskKey).to.have.lengthOf(4)
      expect(frame.payload).to.equalBytes(data)
    }

    // random 32 bit keys: two repeats among 2,100 is a one in ten million chance
    const keys = new Set(frames.map(frame => frame.maskKey?.toString('hex')))
    expect(keys.size).to.be.at.least(count - 1)
  })

  it('encodes each length in as few bytes as RFC 6455 allows', async () => {
    const { socket, received, close } = await openRaw()

    // length, and the second header byte (7 bit length or 126 / 127) of a
    // server's unmasked frame
    const cases = [[125, 125], [126, 126], [65_535, 126], [65_536, 127]]
    let total = 0

    for (const [length] of cases) {
      writeDataFrame(socket, cut(bytes(length, 1)), length, false)
      total += length + serverHeaderSize(length)
    }

    await until(() => received().byteLength >= total, 5_000, 'every frame')
    close()

    const bytesOnWire = received()
    let offset = 0

    for (const [length, code] of cases) {
      expect(bytesOnWire[offset + 1], `length ${length}`).to.equal(code)
      offset += length + serverHeaderSize(length)
    }
  })

  it('keeps each frame whole while the kernel holds many and the peer reads nothing', async () => {
    const { clientSocket, server, serverSocket } = await openPair()
    const received = messages(server)
    serverSocket.pause()

    // more large frames than the buffers kept for reuse, each filled apart
    const sent = Array.from({ length: 200 }, (_, i) => bytes(65_537, i))

    for (const data of sent) {
      writeDataFrame(clientSocket, cut(data), data.byteLength, true)
    }

    expect(clientSocket.writableLength).to.be.greaterThan(0)
    serverSocket.resume()

    await until(() => received.length >= sent.length, 10_000, 'every message at the server')

    received.forEach((data, i) => {
      expect(data, `message ${i}`).to.equalBytes(sent[i])
    })
  })

  it('masks in JavaScript, as correctly, where ws\'s WS_NO_BUFFER_UTIL turns bufferutil off', async () => {
    const saved = process.env.WS_NO_BUFFER_UTIL
    process.env.WS_NO_BUFFER_UTIL = '1'

    try {
      // a module of its own, evaluated with the variable set
      const url = new URL('../src/data-frames.js', import.meta.url)
      url.search = '?without-bufferutil'
      const { writeDataFrame: writeWithoutBufferutil } = await import(url.href)

      const { clientSocket, server } = await openPair()

      await expectWholeAtEveryLength(writeWithoutBufferutil, clientSocket, server, true, 200)
    } finally {
      if (saved == null) {
        delete process.env.WS_NO_BUFFER_UTIL
      } else {
        process.env.WS_NO_BUFFER_UTIL = saved
      }
    }
  })
})
