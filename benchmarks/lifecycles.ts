/**
 * What a listener meets in the wild, one connection lifecycle at a time: the
 * soak's client side. Each kind ends with the connection gone from the
 * client; how the listener ended it is the listener's business, and the
 * soak measures what that leaves behind
 */
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { getNetConfig } from '@libp2p/utils'
import { frame, OPCODE, responseHeadLength, upgradeRequest } from '../toolbox/raw-websocket.ts'
import type { TransportId } from '../toolbox/transports.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Sends back what it receives; the soak listener serves it
 */
export const ECHO_PROTOCOL = '/cleanstop/soak-echo/1.0.0'

/**
 * How long a client waits for the listener to end a connection it should
 * end (a stalled or broken handshake) before it gives up and counts it
 */
const SERVER_CLOSE_MS = 10_000

/**
 * Longest wait for a lifecycle of ours to complete (dial, echo, close)
 */
const LIFECYCLE_MS = 15_000

const ECHO_BYTES = 4 * 1024

export type Kind = 'echo' | 'abort' | 'dial-aborted' | 'silent' | 'slowloris' | 'garbage' | 'malformed'

/**
 * The mix, in shares of all lifecycles
 */
export const MIX: Record<Kind, number> = {
  echo: 0.35,
  abort: 0.10,
  'dial-aborted': 0.10,
  silent: 0.10,
  slowloris: 0.05,
  garbage: 0.15,
  malformed: 0.15
}

export const KIND_LABELS: Record<Kind, string> = {
  echo: 'dial + echo 4 KiB + graceful close',
  abort: 'dial + echo, then abort (reset)',
  'dial-aborted': 'dial aborted mid-handshake',
  silent: 'silent client (handshake deadline)',
  slowloris: 'slowloris, 1 byte / 100 ms (handshake deadline)',
  garbage: 'garbage bytes (1-4 KiB random)',
  malformed: 'malformed frames / messages'
}

/**
 * How one lifecycle ended, from the client's side
 */
export type Outcome =
  // as intended: echoed and closed, aborted, or ended by the listener
  'ok' |
  // the listener did not end a connection it should have ended in time
  'lingered' |
  // something failed that should not have (the echo, a dial)
  'failed'

/**
 * How it ended, and why, when it failed
 */
export interface Ended {
  outcome: Outcome
  error?: string
}

export interface Client {
  node: Libp2p
  transport: TransportId
  addr: Multiaddr
}

export function pickKind (): Kind {
  let r = Math.random()

  for (const [kind, share] of Object.entries(MIX) as Array<[Kind, number]>) {
    r -= share

    if (r < 0) {
      return kind
    }
  }

  return 'echo'
}

export async function runLifecycle (client: Client, kind: Kind): Promise<Ended> {
  switch (kind) {
    case 'echo': return echoAndClose(client, false)
    case 'abort': return echoAndClose(client, true)
    case 'dial-aborted': return abortedDial(client)
    case 'silent': return rawLifecycle(client, async () => {})
    case 'slowloris': return rawLifecycle(client, async socket => { trickle(socket, slowBytes(client.transport)) })
    case 'garbage': return rawLifecycle(client, async socket => { socket.write(randomBytes(1024 + Math.floor(Math.random() * 3072))) })
    case 'malformed': return rawLifecycle(client, async socket => { await malformed(client.transport, socket) })
    default: throw new Error(`Unknown lifecycle ${String(kind)}`)
  }
}

async function echoAndClose (client: Client, abort: boolean): Promise<Ended> {
  const signal = AbortSignal.timeout(LIFECYCLE_MS)
  let connection: Connection | undefined

  try {
    // without force a dial may hand back a connection still closing
    connection = await client.node.dial(client.addr, { force: true, signal })
    const stream = await connection.newStream(ECHO_PROTOCOL, { signal })
    const payload = randomBytes(ECHO_BYTES)

    if (abort) {
      stream.send(payload)
      // part of the echo may be on its way back: a reset mid-stream
      connection.abort(new Error('the soak aborts this connection'))
      return { outcome: 'ok' }
    }

    const echoed = await echo(stream, payload, signal)
    await connection.close({ signal })

    return echoed === ECHO_BYTES ? { outcome: 'ok' } : { outcome: 'failed', error: `${echoed} of ${ECHO_BYTES} bytes echoed` }
  } catch (err: any) {
    connection?.abort(new Error('the lifecycle failed'))
    return { outcome: 'failed', error: `${err.name}: ${err.message}` }
  }
}

async function echo (stream: Stream, payload: Uint8Array, signal: AbortSignal): Promise<number> {
  let received = 0

  await Promise.all([
    (async () => {
      for await (const buf of stream) {
        received += buf.byteLength
      }
    })(),
    (async () => {
      stream.send(payload)
      await stream.close({ signal })
    })()
  ])

  return received
}

/**
 * The dial's progress events mark where it is: the transport opening its
 * socket (and the WebSocket upgrade), the upgrader encrypting, then
 * negotiating the muxer. The dial is aborted just after one of them
 */
async function abortedDial (client: Client): Promise<Ended> {
  const controller = new AbortController()
  const stages = ['open-connection', 'upgrader:encrypt-outbound-connection', 'upgrader:multiplex-outbound-connection']
  const stage = stages[Math.floor(Math.random() * stages.length)]
  const deadline = setTimeout(() => { controller.abort() }, LIFECYCLE_MS)

  try {
    const connection = await client.node.dial(client.addr, {
      force: true,
      signal: controller.signal,
      onProgress: (event: { type: string }) => {
        if (event.type.endsWith(stage)) {
          setImmediate(() => { controller.abort() })
        }
      }
    })

    // too late: it completed first, and goes the graceful way
    await connection.close({ signal: AbortSignal.timeout(LIFECYCLE_MS) })

    return { outcome: 'ok' }
  } catch (err: any) {
    return controller.signal.aborted ? { outcome: 'ok' } : { outcome: 'failed', error: `${err.name}: ${err.message}` }
  } finally {
    clearTimeout(deadline)
  }
}

/**
 * A raw TCP client that does `act` and waits for the listener to end the
 * connection: every raw kind is a connection the listener must end
 */
async function rawLifecycle (client: Client, act: (socket: net.Socket) => Promise<void>): Promise<Ended> {
  const { host, port } = getNetConfig(client.addr)
  const socket = net.connect({ host, port: port ?? 0 })
  socket.on('error', () => {})
  // what the listener answers is not read: only its end matters
  socket.resume()

  const closed = new Promise<void>(resolve => { socket.once('close', () => { resolve() }) })

  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('close', () => { reject(new Error('closed before connecting')) })
    })
    await act(socket)
  } catch (err: any) {
    socket.destroy()
    return { outcome: 'failed', error: err.message }
  }

  let timer: ReturnType<typeof setTimeout> | undefined
  const lingered = await Promise.race([
    closed.then(() => false),
    new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, SERVER_CLOSE_MS) })
  ])
  clearTimeout(timer)
  socket.destroy()

  return { outcome: lingered ? 'lingered' : 'ok' }
}

/**
 * The start of a handshake, sent a byte every 100 ms for as long as the
 * socket is open: an HTTP upgrade whose headers never end, or a multistream
 * message announced 127 bytes long
 */
function slowBytes (transport: TransportId): Buffer {
  if (transport === 'tcp') {
    return Buffer.concat([Buffer.from([127]), Buffer.from('/multistream/1.0.0\n'.repeat(7))])
  }

  return Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n${'X-Slow: a\r\n'.repeat(100)}`)
}

function trickle (socket: net.Socket, bytes: Buffer): void {
  let sent = 0
  const timer = setInterval(() => {
    if (sent < bytes.byteLength && !socket.destroyed) {
      socket.write(bytes.subarray(sent, sent + 1))
      sent++
    }
  }, 100)

  socket.once('close', () => { clearInterval(timer) })
}

/**
 * Ours: a WebSocket upgrade, then a frame no peer may send (a reserved
 * opcode, an unmasked frame, a reserved bit, or a text frame, which libp2p
 * does not use). Tcp: a multistream message whose length varint never ends
 */
async function malformed (transport: TransportId, socket: net.Socket): Promise<void> {
  if (transport === 'tcp') {
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))
    return
  }

  socket.pause()
  socket.write(upgradeRequest())
  let received = Buffer.alloc(0)

  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk])

      if (responseHeadLength(received) !== -1) {
        socket.off('data', onData)
        resolve()
      }
    }

    socket.on('data', onData)
    socket.once('close', () => { reject(new Error('closed during the upgrade')) })
    socket.resume()
  })

  const frames = [
    frame({ opcode: 0x3, payload: 'reserved opcode' }),
    frame({ opcode: OPCODE.binary, payload: 'unmasked', masked: false }),
    frame({ opcode: OPCODE.binary, payload: 'reserved bit', rsv: 0b100 }),
    frame({ opcode: OPCODE.text, payload: 'libp2p sends no text' })
  ]
  socket.write(frames[Math.floor(Math.random() * frames.length)])
}
