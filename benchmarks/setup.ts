import { now } from '../toolbox/time.ts'
import { cpuClock, withListenerCpu } from './cpu.ts'
import type { Child } from '../toolbox/supervisor.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface SetupArgs {
  addr: string
  count: number
}

export interface SetupRun {
  latencies: number[]
  closes: number[]
  ms: number
  cpuMs: number
}

/**
 * Dialer side: dial, upgrade and close fresh connections one after the other
 */
export function dialerCommands (node: Libp2p, multiaddr: (addr: string) => Multiaddr): Record<string, (args: any) => Promise<any>> {
  return {
    async setup ({ addr, count }: SetupArgs): Promise<SetupRun> {
      const ma = multiaddr(addr)
      const latencies: number[] = []
      const closes: number[] = []
      const cpuMs = cpuClock()
      const start = now()

      for (let i = 0; i < count; i++) {
        const begin = now()
        // without force a dial may hand back a connection still closing
        const conn = await node.dial(ma, { force: true })
        const opened = now()
        latencies.push(opened - begin)
        await conn.close()
        closes.push(now() - opened)
      }

      return { latencies, closes, ms: now() - start, cpuMs: cpuMs() }
    }
  }
}

export interface SetupResult {
  perSecond: number
  /**
   * Dial and upgrade
   */
  p50: number
  p99: number
  /**
   * `connection.close()`
   */
  closeP50: number
  /**
   * CPU ms per connection in each process
   */
  dialerCpuMs: number
  listenerCpuMs: number
}

export async function measureSetup (listener: Child, dialer: Child, args: SetupArgs): Promise<SetupResult> {
  const { run, listenerCpuMs } = await withListenerCpu(listener, async () => dialer.call<SetupRun>('setup', args, 120_000))
  const sorted = run.latencies.sort((a, b) => a - b)

  return {
    perSecond: args.count / (run.ms / 1000),
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    closeP50: quantile(run.closes.sort((a, b) => a - b), 0.5),
    dialerCpuMs: run.cpuMs / args.count,
    listenerCpuMs: listenerCpuMs / args.count
  }
}

/**
 * Nearest-rank quantile of sorted values
 */
export function quantile (sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
}
