import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Child } from './supervisor.ts'
import type { ChildOptions } from './supervisor.ts'
import type { TransportId } from './transports.ts'

// the script as this file runs: TypeScript, or built into dist/
const SCRIPT = new URL(`./node-process${extname(fileURLToPath(import.meta.url))}`, import.meta.url)

/**
 * A libp2p node in a child process (node-process.ts): for what only another
 * process shows, whether a process exits by itself after `node.stop()`, or a
 * peer that stops answering (`child.freeze()`) or reading. It answers the hold
 * and echo protocols. Its commands, through `child.call()`: `hold`
 * ({ addr }), `dial` ({ addr }), `stall` and `unstall` (stop and resume
 * reading every connection's socket), `start` and `stop` (resolves with
 * `{ stopMs, error? }`). Its reports, if asked for (`reportConnections`), for
 * `child.expect()`: `connection-opened` ({ remotePeer }), `connection-closed`
 * and `echo-stream-closed` ({ remotePeer, status, error? }, `error` the name
 * of the error it ended with)
 */
export interface RemoteNode {
  child: Child

  /**
   * Where it listens, with its peer ID; empty if not started
   */
  addr: string
}

export interface RemoteNodeOptions extends ChildOptions {
  /**
   * Create the node without starting it, for the `start` command
   *
   * @default true
   */
  started?: boolean

  /**
   * How long the node may take to start
   *
   * @default 30_000
   */
  readyMs?: number

  /**
   * Report how each connection opens and ends and how each echo stream ends
   *
   * @default false
   */
  reportConnections?: boolean

  /**
   * How many inbound connections a second libp2p accepts from one host, and
   * how many it upgrades at once: a node that many short tests dial from
   * 127.0.0.1 needs more than libp2p's defaults
   *
   * @default libp2p's, 5 a second and 10 at once
   */
  inboundLimit?: number
}

export async function startRemoteNode (transport: TransportId, options: RemoteNodeOptions = {}): Promise<RemoteNode> {
  const args = [
    transport,
    ...options.started === false ? ['--unstarted'] : [],
    ...options.reportConnections === true ? ['--report-connections'] : [],
    ...options.inboundLimit == null ? [] : ['--inbound-limit', String(options.inboundLimit)]
  ]
  const child = new Child(SCRIPT, args, {
    name: `node on ${transport}`,
    ...options
  })
  const { addrs } = await child.started(options.readyMs)

  return { child, addr: addrs[0] ?? '' }
}
