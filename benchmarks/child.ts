/**
 * Entry of every process the bench runner starts: `child.ts ROLE ARGS`, then
 * calls over IPC (toolbox/supervised.ts)
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createNode } from '../toolbox/node.ts'
import { serve } from '../toolbox/supervised.ts'
import { cpu } from './cpu.ts'
import * as memory from './memory.ts'
import * as raw from './raw.ts'
import * as setup from './setup.ts'
import * as stop from './stop.ts'
import * as throughput from './throughput.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { Commands } from '../toolbox/supervised.ts'
import type { TransportId } from '../toolbox/transports.ts'
import type { Libp2p } from '@libp2p/interface'

/**
 * A node with the transport's defaults, or `init`
 */
async function benchNode (transport: TransportId, init?: WebSocketsInit, listen = false): Promise<Libp2p> {
  return createNode({
    transport,
    init,
    listen: listen ? undefined : [],
    config: {
      connectionManager: {
        // the defaults (300 connections, 5 per second and 10 pending per host)
        // would refuse most of the connections these benchmarks open, all from
        // 127.0.0.1
        maxConnections: 100_000,
        inboundConnectionThreshold: 100_000,
        maxIncomingPendingConnections: 1_000
      },
      connectionMonitor: {
        // its ping every 10 s per connection is traffic, and idle connections
        // must stay idle while memory is measured
        enabled: false
      }
    }
  })
}

/**
 * libp2p 3.3's `ConnectionManager.getConnections()` builds its list with
 * `concat` in a loop, quadratic in the number of peers, and its connection
 * pruner calls it on every new connection: opening 4,000 connections spent 30
 * of the listener's 70 CPU seconds there, and 10,000 would take about ten
 * minutes, whatever the transport. The same list in linear time, so the scale
 * rows measure transports rather than that
 */
function linearGetConnections (node: Libp2p): void {
  const manager = (node as any).components.connectionManager
  const ofPeer = manager.getConnections.bind(manager)

  manager.getConnections = (peerId?: unknown) => peerId != null ? ofPeer(peerId) : [...manager.getConnectionsMap().values()].flat()
}

const ROLES: Record<string, (args: any) => Promise<Commands>> = {
  async listener ({ transport, init }) {
    const node = await benchNode(transport, init, true)
    linearGetConnections(node)
    await node.handle(throughput.COUNT_PROTOCOL, throughput.handleCount, {
      maxInboundStreams: 1_000
    })

    return {
      async addr () {
        return node.getMultiaddrs()[0].toString()
      },
      cpu,
      ...memory.listenerCommands(node),
      ...stop.listenerCommands(node)
    }
  },

  async dialer ({ transport, init }) {
    const node = await benchNode(transport, init)

    return {
      ...throughput.dialerCommands(node, multiaddr),
      ...setup.dialerCommands(node, multiaddr)
    }
  },

  async fleet ({ transport }) {
    return memory.fleetCommands(async () => benchNode(transport), multiaddr)
  },

  async 'raw-server' ({ kind }) {
    return raw.serverCommands(kind)
  },

  async 'raw-client' ({ kind }) {
    return raw.clientCommands(kind)
  }
}

const [role, args] = process.argv.slice(2)

serve(await ROLES[role](JSON.parse(args)))
