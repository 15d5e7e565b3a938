import { now } from '../toolbox/time.ts'
import { cpuClock, withListenerCpu } from './cpu.ts'
import type { Child } from '../toolbox/supervisor.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * The listener counts every byte of a stream and, once the dialer has closed
 * its end, answers with the count as a 64 bit integer
 */
export const COUNT_PROTOCOL = '/bench/count/1.0.0'

/**
 * What an application typically hands a stream in one call
 */
const CHUNK_SIZE = 64 * 1024

export function handleCount (stream: Stream): void {
  let received = 0

  stream.addEventListener('message', (evt) => {
    received += evt.data.byteLength
  })

  // 'end' comes once the data before the remote's close has been delivered
  stream.addEventListener('end', () => {
    const reply = new Uint8Array(8)
    new DataView(reply.buffer).setBigUint64(0, BigInt(received))

    try {
      stream.send(reply)
      stream.close().catch(err => { stream.abort(err) })
    } catch (err: any) {
      stream.abort(err)
    }
  }, { once: true })
}

/**
 * Send `bytes` over a new stream and resolve with the count the listener saw
 */
async function sendCounted (conn: Connection, bytes: number, chunk: Uint8Array): Promise<number> {
  const stream = await conn.newStream(COUNT_PROTOCOL)
  const reply: number[] = []
  const replied = new Promise<number>((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      reply.push(...evt.data.subarray())

      if (reply.length >= 8) {
        resolve(Number(new DataView(Uint8Array.from(reply).buffer).getBigUint64(0)))
      }
    })
    stream.addEventListener('close', (evt) => {
      reject(evt.error ?? new Error('stream closed before the count arrived'))
    })
  })

  let sent = 0

  while (sent < bytes) {
    const length = Math.min(chunk.byteLength, bytes - sent)
    sent += length

    if (!stream.send(length === chunk.byteLength ? chunk : chunk.subarray(0, length))) {
      await stream.onDrain()
    }
  }

  await stream.close()

  return replied
}

export interface ThroughputArgs {
  addr: string
  bytes: number
  streams: number
}

export interface ThroughputRun {
  ms: number
  sent: number
  received: number
  cpuMs: number
}

/**
 * Dialer side: one connection, `streams` streams in parallel sharing `bytes`
 */
export function dialerCommands (node: Libp2p, multiaddr: (addr: string) => Multiaddr): Record<string, (args: any) => Promise<any>> {
  const chunk = new Uint8Array(CHUNK_SIZE).map((_, i) => i * 7)
  let conn: Connection | undefined

  return {
    async throughput ({ addr, bytes, streams }: ThroughputArgs): Promise<ThroughputRun> {
      if (conn == null || conn.status !== 'open') {
        conn = await node.dial(multiaddr(addr))
      }

      const open = conn
      const share = Math.floor(bytes / streams)
      const cpuMs = cpuClock()
      const start = now()
      const counts = await Promise.all(
        Array.from({ length: streams }, async () => sendCounted(open, share, chunk))
      )
      return {
        ms: now() - start,
        sent: share * streams,
        received: counts.reduce((a, b) => a + b, 0),
        cpuMs: cpuMs()
      }
    }
  }
}

export interface ThroughputResult {
  mbps: number
  cpuMsPerMiB: number
  listenerCpuMsPerMiB: number
}

/**
 * Runner side: one transfer, checked
 */
export async function measureThroughput (listener: Child, dialer: Child, args: ThroughputArgs): Promise<ThroughputResult> {
  const { run, listenerCpuMs } = await withListenerCpu(listener, async () => dialer.call<ThroughputRun>('throughput', args, 120_000))

  if (run.received !== run.sent) {
    throw new Error(`sent ${run.sent} bytes but the listener received ${run.received}`)
  }

  const mib = run.sent / 1024 / 1024

  return {
    mbps: run.sent / 1e6 / (run.ms / 1000),
    cpuMsPerMiB: run.cpuMs / mib,
    listenerCpuMsPerMiB: listenerCpuMs / mib
  }
}
