import { delay } from '../toolbox/time.ts'
import type { Child } from '../toolbox/supervisor.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Many peers, one libp2p node each, in one process: the listener sees a
 * distinct peer per connection, as it would in a real network
 */
export function fleetCommands (createNode: () => Promise<Libp2p>, multiaddr: (addr: string) => Multiaddr): Record<string, (args: any) => Promise<any>> {
  const nodes: Libp2p[] = []

  return {
    /**
     * Nodes `from` to `to` each open one connection to `addr`
     */
    async connect ({ addr, from, to, concurrency }: { addr: string, from: number, to: number, concurrency: number }): Promise<void> {
      while (nodes.length < to) {
        nodes.push(await createNode())
      }

      const ma = multiaddr(addr)
      let next = from

      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < to) {
          await nodes[next++].dial(ma)
        }
      }))
    },

    /**
     * Drop whatever connection a previous run left, so nodes can be reused
     */
    async reset (): Promise<void> {
      for (const node of nodes) {
        for (const conn of node.getConnections()) {
          conn.abort(new Error('bench reset'))
        }
      }

      for (let i = 0; i < 200 && nodes.some(node => node.getConnections().length > 0); i++) {
        await delay(25)
      }
    }
  }
}

export interface MemorySample {
  rss: number
  heapUsed: number
  external: number
  connections: number
}

/**
 * Listener side, run with --expose-gc
 */
export function listenerCommands (node: Libp2p): Record<string, (args: any) => Promise<any>> {
  return {
    async waitConnections ({ count, timeout }: { count: number, timeout: number }): Promise<number> {
      const until = Date.now() + timeout

      while (node.getConnections().length < count && Date.now() < until) {
        await delay(20)
      }

      return node.getConnections().length
    },

    async memory (): Promise<MemorySample> {
      // let upgrades finish their last writes before collecting
      await delay(200)

      for (let i = 0; i < 3; i++) {
        globalThis.gc?.()
        await delay(20)
      }

      const { rss, heapUsed, external } = process.memoryUsage()

      return { rss, heapUsed, external, connections: node.getConnections().length }
    }
  }
}

export interface IdleResult {
  rssPerConn: number
  heapPerConn: number
  externalPerConn: number
  connectMs: number
}

/**
 * Open `count` idle connections to the listener from the fleets (`perFleet`
 * nodes each), and measure the listener's memory per connection as the growth
 * from a tenth of them to all of them, which leaves out code compiled and
 * caches filled by the first connections
 */
export async function openIdle (listener: Child, fleets: Child[], addr: string, count: number, perFleet: number): Promise<IdleResult> {
  const first = Math.max(1, Math.floor(count / 10))
  const start = Date.now()
  await Promise.all(fleets.map(async fleet => fleet.call('reset', {}, 30_000)))

  await connect(fleets, perFleet, addr, 0, first)
  await waitFor(listener, first)
  const before = await listener.call<MemorySample>('memory')

  await connect(fleets, perFleet, addr, first, count)
  await waitFor(listener, count)
  const after = await listener.call<MemorySample>('memory')
  const n = after.connections - before.connections

  return {
    rssPerConn: (after.rss - before.rss) / n,
    heapPerConn: (after.heapUsed - before.heapUsed) / n,
    externalPerConn: (after.external - before.external) / n,
    connectMs: Date.now() - start
  }
}

/**
 * Connections `from` to `to`, each fleet dialing those of its own nodes that
 * fall in the range, all fleets at once
 */
async function connect (fleets: Child[], perFleet: number, addr: string, from: number, to: number): Promise<void> {
  await Promise.all(fleets.map(async (fleet, i) => {
    const low = Math.max(from, i * perFleet)
    const high = Math.min(to, (i + 1) * perFleet)

    if (low < high) {
      // a connection takes a few ms of CPU on either side: a generous 20 each
      await fleet.call('connect', { addr, from: low - i * perFleet, to: high - i * perFleet, concurrency: 16 }, 120_000 + (high - low) * 20)
    }
  }))
}

async function waitFor (listener: Child, count: number): Promise<void> {
  const timeout = 30_000 + count * 5
  const seen = await listener.call<number>('waitConnections', { count, timeout }, timeout + 10_000)

  if (seen !== count) {
    throw new Error(`listener has ${seen} connections, expected ${count}`)
  }
}
