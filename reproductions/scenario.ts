/**
 * What a reproduction's child uses: a libp2p node on the transport under
 * test, a peer in another process, and reports to the parent
 */
import { ping } from '@libp2p/ping'
import { createNode } from '../toolbox/node.ts'
import { startRemoteNode } from '../toolbox/remote-node.ts'
import { letGo, report } from '../toolbox/supervised.ts'
import type { TransportId } from '../toolbox/transports.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'

export type Node = Libp2p<{ ping: Ping }>

/**
 * A node as an application would run one: noise, yamux, ping, allowed to
 * dial loopback, each transport with its defaults. It listens on a free
 * loopback port unless `listen` is false
 */
export async function scenarioNode (transport: TransportId, listen = true): Promise<Node> {
  return createNode({ transport, listen: listen ? undefined : [], services: { ping: ping() } })
}

/**
 * Stop the node, report how long that took, and a moment later what still
 * keeps the event loop alive (sockets, timers), if the process is still there
 */
export async function stopAndReport (node: Libp2p): Promise<void> {
  const start = performance.now()
  await node.stop()
  await report('stopped', { stopMs: Math.round(performance.now() - start) })
  letGo()

  // unref'd: it must not be what keeps us alive
  setTimeout(() => {
    const counts: Record<string, number> = {}

    // PipeWrap is our stdout, stderr and IPC channel, which hold nothing now
    for (const resource of process.getActiveResourcesInfo().filter(name => name !== 'PipeWrap')) {
      counts[resource] = (counts[resource] ?? 0) + 1
    }

    void report('alive', { resources: counts })
  }, 500).unref()
}

/**
 * A libp2p node in another process, so that it can be frozen with SIGSTOP: its
 * sockets stay open and nothing answers on them
 */
export interface Peer {
  addr: string
  freeze(): void
}

/**
 * A peer on the same transport. It stays in our process group (the parent
 * kills the group at the end, frozen members included), and once frozen
 * holds nothing of ours, so that it never keeps this process alive
 */
export async function startPeer (transport: TransportId): Promise<Peer> {
  const { child, addr } = await startRemoteNode(transport, { name: 'peer', ownGroup: false })

  return {
    addr,
    freeze: () => {
      child.freeze()
      child.release()
    }
  }
}
