/**
 * A libp2p node in a process of its own, served over IPC to remote-node.ts:
 * the node under test of a shutdown hazard, or a peer that can be frozen
 * (SIGSTOP). Once stopped it lets go of the parent, so that whether the
 * process exits depends only on what the node left behind.
 *
 * Usage: `node-process.ts <transport> [unstarted]`
 */
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { handleHold, hold } from './hold.ts'
import { createNode } from './node.ts'
import { letGo, serve } from './supervised.ts'
import { isTransportId } from './transports.ts'

const [transport, unstarted] = process.argv.slice(2)

if (!isTransportId(transport)) {
  throw new Error(`Unknown transport "${transport}"`)
}

// ping answers the connection monitor of the other end, as in an application
const node = await createNode({ transport, services: { ping: ping() }, config: { start: unstarted == null } })
await handleHold(node)

serve({
  start: async () => { await node.start() },
  hold: async ({ addr }) => { await hold(node, addr) },
  // a dial that never completes is a hazard of its own: answer at once
  dial: async ({ addr }) => { node.dial(multiaddr(addr)).catch(() => {}) },
  stop: async () => {
    const start = performance.now()
    let error: string | undefined

    try {
      await node.stop()
    } catch (err: any) {
      error = err.message
    }

    letGo()

    return { stopMs: performance.now() - start, error }
  }
}, { addrs: node.getMultiaddrs().map(String) })
