/**
 * A libp2p node in a process of its own, served over IPC to remote-node.ts:
 * the node under test of a shutdown hazard, a peer that can be frozen
 * (SIGSTOP) or stalled, or the far side a browser dials. It answers the hold
 * and echo protocols. Once stopped it lets go of the parent, so that whether
 * the process exits depends only on what the node left behind.
 *
 * Usage: `node-process.ts <transport> [--unstarted] [--report-connections]
 * [--inbound-limit <n>]` (see RemoteNodeOptions)
 */
import { parseArgs } from 'node:util'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { handleEcho } from './echo.ts'
import { handleHold, hold } from './hold.ts'
import { createNode, stopAndLetGo } from './node.ts'
import { setReading } from './stall.ts'
import { report, serve } from './supervised.ts'
import { isTransportId } from './transports.ts'
import type { Connection, StreamCloseEvent } from '@libp2p/interface'

const { positionals: [transport], values: options } = parseArgs({
  allowPositionals: true,
  options: {
    unstarted: { type: 'boolean', default: false },
    'report-connections': { type: 'boolean', default: false },
    'inbound-limit': { type: 'string' }
  }
})

if (!isTransportId(transport)) {
  throw new Error(`Unknown transport "${transport}"`)
}

const inboundLimit = options['inbound-limit'] == null ? undefined : Number(options['inbound-limit'])

// ping answers the connection monitor of the other end, as in an application
const node = await createNode({
  transport,
  services: { ping: ping() },
  config: {
    start: !options.unstarted,
    ...(inboundLimit == null
      ? {}
      : { connectionManager: { inboundConnectionThreshold: inboundLimit, maxIncomingPendingConnections: inboundLimit } })
  }
})
const reporting = options['report-connections']

/**
 * How a connection or a stream ended, as this node saw it: `status` is the
 * stream's or connection's (`closed`, `reset`, `aborted`), `error` the name of
 * the error it ended with, if any
 */
function ending (connection: Connection, ended: { status: string }, evt: StreamCloseEvent): Record<string, unknown> {
  return { remotePeer: connection.remotePeer.toString(), status: ended.status, error: evt.error?.name }
}

if (reporting) {
  node.addEventListener('connection:open', ({ detail: connection }) => {
    void report('connection-opened', { remotePeer: connection.remotePeer.toString() })
    connection.addEventListener('close', (evt) => {
      void report('connection-closed', ending(connection, connection, evt))
    }, { once: true })
  })
}

await handleHold(node)
await handleEcho(node, {
  onStream: (stream, connection) => {
    if (reporting) {
      stream.addEventListener('close', (evt) => {
        void report('echo-stream-closed', ending(connection, stream, evt))
      }, { once: true })
    }
  }
})

serve({
  start: async () => { await node.start() },
  hold: async ({ addr }) => { await hold(node, addr) },
  // a dial that never completes is a hazard of its own: answer at once
  dial: async ({ addr }) => { node.dial(multiaddr(addr)).catch(() => {}) },
  stall: async () => { setReading(node, false) },
  unstall: async () => { setReading(node, true) },
  stop: async () => stopAndLetGo(node)
}, { addrs: node.getMultiaddrs().map(String) })
