/**
 * Entry of every process the bench runner forks: `child.ts ROLE ARGS`, then
 * commands over IPC (see rpc.ts)
 */
import { multiaddr } from '@multiformats/multiaddr'
import * as memory from './memory.ts'
import * as raw from './raw.ts'
import { serve } from './rpc.ts'
import * as setup from './setup.ts'
import * as stop from './stop.ts'
import * as throughput from './throughput.ts'
import { createBenchNode } from './transports.ts'
import type { Handlers } from './rpc.ts'

const ROLES: Record<string, (args: any) => Promise<Handlers>> = {
  async listener ({ transport }) {
    const node = await createBenchNode(transport, { listen: true })
    await node.handle(throughput.COUNT_PROTOCOL, throughput.handleCount, {
      maxInboundStreams: 1_000
    })

    return {
      async addr () {
        return node.getMultiaddrs()[0].toString()
      },
      cpu: throughput.cpu,
      ...memory.listenerCommands(node),
      ...stop.listenerCommands(node)
    }
  },

  async dialer ({ transport }) {
    const node = await createBenchNode(transport)

    return {
      ...throughput.dialerCommands(node, multiaddr),
      ...setup.dialerCommands(node, multiaddr)
    }
  },

  async fleet ({ transport }) {
    return memory.fleetCommands(transport, multiaddr)
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
