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
 * peer that stops answering (`child.freeze()`). Its commands, through
 * `child.call()`: `hold` ({ addr }), `dial` ({ addr }), `start` and `stop`
 * (resolves with `{ stopMs, error? }`)
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
}

export async function startRemoteNode (transport: TransportId, options: RemoteNodeOptions = {}): Promise<RemoteNode> {
  const child = new Child(SCRIPT, options.started === false ? [transport, 'unstarted'] : [transport], {
    name: `node on ${transport}`,
    ...options
  })
  const { addrs } = await child.started(options.readyMs)

  return { child, addr: addrs[0] ?? '' }
}
