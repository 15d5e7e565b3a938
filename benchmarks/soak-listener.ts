/**
 * The listener of the soak, in a process of its own so that what it keeps is
 * all it measures: a libp2p node serving the soak's echo, sampled between
 * batches once every connection is gone (heap after GC, RSS, open fds, active
 * handles, sockets by phase). Needs `--expose-gc`.
 *
 * Usage: `soak-listener.ts <transport> <WebSocketsInit as JSON>`
 */
import { createNode } from '../toolbox/node.ts'
import { serve } from '../toolbox/supervised.ts'
import { heldTcpSockets, openFds } from '../toolbox/tcp-table.ts'
import { delay } from '../toolbox/time.ts'
import { isTransportId } from '../toolbox/transports.ts'
import { ECHO_PROTOCOL } from './lifecycles.ts'
import type { Stream } from '@libp2p/interface'

const [transport, init] = process.argv.slice(2)

if (!isTransportId(transport)) {
  throw new Error(`Unknown transport "${transport}"`)
}

const gc = (globalThis as any).gc as (() => void) | undefined

if (gc == null) {
  throw new Error('the soak listener needs --expose-gc')
}

/**
 * How long a stalled handshake may last: ours ends it at its handshake
 * deadline, tcp at libp2p's inbound upgrade timeout, the same here
 */
const HANDSHAKE_MS = 1_000

const node = await createNode({
  transport,
  init: { handshakeTimeout: HANDSHAKE_MS, ...JSON.parse(init) },
  config: {
    connectionManager: {
      // the defaults (300 connections, 5 per second and 10 pending per host)
      // would refuse most of the soak, all from 127.0.0.1
      maxConnections: 100_000,
      inboundConnectionThreshold: 100_000,
      maxIncomingPendingConnections: 10_000,
      inboundUpgradeTimeout: HANDSHAKE_MS
    },
    connectionMonitor: { enabled: false }
  }
})

async function echo (stream: Stream): Promise<void> {
  try {
    for await (const buf of stream) {
      stream.send(buf)
    }

    await stream.close({ signal: AbortSignal.timeout(10_000) })
  } catch (err: any) {
    stream.abort(err)
  }
}

await node.handle(ECHO_PROTOCOL, (stream) => { void echo(stream) }, {
  maxInboundStreams: 1_000
})

/**
 * Our listener's sockets by phase, for a node running ours
 */
function socketCounts (): Record<string, number> | undefined {
  const listeners: any[] = (node as any).components.transportManager.getListeners()

  return listeners[0]?.socketCounts?.()
}

function countBy (items: string[]): Record<string, number> {
  const counts: Record<string, number> = {}

  for (const item of items) {
    counts[item] = (counts[item] ?? 0) + 1
  }

  return counts
}

/**
 * Sockets still open (anything but the listening one), connections libp2p
 * still has, sockets our listener still tracks
 */
function remaining (): number {
  const sockets = process.getActiveResourcesInfo().filter(type => type === 'TCPSocketWrap').length
  const tracked = Object.values(socketCounts() ?? {}).reduce((a, b) => a + b, 0)

  return Math.max(sockets, tracked, node.getConnections().length)
}

serve({
  /**
   * Wait until no connection is left, as a soak between batches; resolves
   * with how long that took, or with -1 if some were still left after `ms`
   */
  drained: async ({ ms }) => {
    const start = performance.now()

    while (remaining() > 0) {
      if (performance.now() - start > ms) {
        return -1
      }

      await delay(20)
    }

    return performance.now() - start
  },
  sample: async () => {
    // more than one pass, with turns of the event loop between, so that
    // objects freed by finalizers and weak callbacks go too
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise(resolve => setImmediate(resolve))
    }

    const memory = process.memoryUsage()
    const resources = countBy(process.getActiveResourcesInfo())

    return {
      heapUsed: memory.heapUsed,
      rss: memory.rss,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      fds: openFds(),
      resources,
      handles: Object.entries(resources).filter(([type]) => type !== 'Timeout' && type !== 'Immediate').reduce((a, [, n]) => a + n, 0),
      timers: resources.Timeout ?? 0,
      sockets: socketCounts(),
      connections: node.getConnections().length,
      heldTcp: heldTcpSockets().length
    }
  }
}, { addr: node.getMultiaddrs()[0].toString() })
