import http from 'node:http'
import net from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { now } from '../toolbox/time.ts'
import { cpuClock } from './cpu.ts'
import type { Child } from '../toolbox/supervisor.ts'

/**
 * The limits of this machine under libp2p: the same bytes between two
 * processes over a plain `ws` WebSocket and over a plain TCP socket, with no
 * encryption or multiplexing
 */
export type RawKind = 'ws' | 'tcp'

const CHUNK_SIZE = 64 * 1024

/**
 * Bytes the WebSocket sender lets `ws` hold before it waits for writes to
 * complete, as libp2p's WebSocket transports do
 */
const WS_WINDOW = 4 * 1024 * 1024

/**
 * Listen on loopback; each connection is answered with the number of bytes it
 * sent once the sender marks its end
 */
export function serverCommands (kind: RawKind): Record<string, (args: any) => Promise<any>> {
  return {
    async listen (): Promise<number> {
      const server = net.createServer({ noDelay: true })

      if (kind === 'tcp') {
        server.on('connection', (socket) => {
          let received = 0
          socket.on('data', (buf: Buffer) => { received += buf.byteLength })
          socket.on('end', () => { socket.end(String(received)) })
          socket.on('error', () => {})
        })
      } else {
        const wss = new WebSocketServer({ noServer: true })
        const httpServer = http.createServer()
        httpServer.on('upgrade', (req, socket, head) => {
          wss.handleUpgrade(req, socket, head, (ws) => {
            let received = 0
            ws.on('message', (data: Buffer, isBinary) => {
              if (isBinary) {
                received += data.byteLength
              } else {
                ws.send(String(received))
              }
            })
            ws.on('error', () => {})
          })
        })
        server.on('connection', (socket) => { httpServer.emit('connection', socket) })
      }

      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))

      return (server.address() as net.AddressInfo).port
    }
  }
}

interface RawRun {
  ms: number
  sent: number
  received: number
  cpuMs: number
}

export function clientCommands (kind: RawKind): Record<string, (args: any) => Promise<any>> {
  const chunk = Buffer.alloc(CHUNK_SIZE, 7)

  return {
    async transfer ({ port, bytes }: { port: number, bytes: number }): Promise<RawRun> {
      const cpuMs = cpuClock()
      const start = now()
      const received = kind === 'tcp' ? await sendTcp(port, bytes, chunk) : await sendWs(port, bytes, chunk)

      return { ms: now() - start, sent: bytes, received, cpuMs: cpuMs() }
    }
  }
}

async function sendTcp (port: number, bytes: number, chunk: Buffer): Promise<number> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
  await new Promise((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  const reply: Buffer[] = []
  const replied = new Promise<number>((resolve, reject) => {
    socket.on('data', (buf: Buffer) => { reply.push(buf) })
    socket.on('end', () => { resolve(Number(Buffer.concat(reply).toString())) })
    socket.on('error', reject)
  })

  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    const length = Math.min(chunk.byteLength, bytes - sent)

    if (!socket.write(length === chunk.byteLength ? chunk : chunk.subarray(0, length))) {
      await new Promise(resolve => socket.once('drain', resolve))
    }
  }

  socket.end()

  return replied
}

async function sendWs (port: number, bytes: number, chunk: Buffer): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`)
  await new Promise((resolve, reject) => { ws.once('open', resolve).once('error', reject) })
  const replied = new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        resolve(Number(data.toString()))
      }
    })
    ws.on('error', reject)
  })

  // `ws` calls back once a message is written to the socket: keep a window
  // of messages in flight
  let inFlight = 0
  let wake: (() => void) | undefined
  const written = (): void => {
    inFlight -= chunk.byteLength

    if (wake != null && inFlight < WS_WINDOW) {
      wake()
      wake = undefined
    }
  }
  const windowOpen = async (): Promise<void> => new Promise<void>(resolve => { wake = resolve })

  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    const length = Math.min(chunk.byteLength, bytes - sent)

    if (inFlight >= WS_WINDOW) {
      await windowOpen()
    }

    inFlight += chunk.byteLength
    ws.send(length === chunk.byteLength ? chunk : chunk.subarray(0, length), { binary: true }, written)
  }

  ws.send('end')
  const received = await replied
  ws.terminate()

  return received
}

export interface RawResult {
  mbps: number
  cpuMsPerMiB: number
}

export async function measureRaw (client: Child, port: number, bytes: number): Promise<RawResult> {
  const run = await client.call<RawRun>('transfer', { port, bytes }, 120_000)

  if (run.received !== run.sent) {
    throw new Error(`sent ${run.sent} bytes but the server received ${run.received}`)
  }

  return {
    mbps: run.sent / 1e6 / (run.ms / 1000),
    cpuMsPerMiB: run.cpuMs / (run.sent / 1024 / 1024)
  }
}
