import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Child } from './supervisor.ts'
import type { ChildOptions } from './supervisor.ts'
import type { TcpSocket } from './tcp-table.ts'
import type { TransportId } from './transports.ts'
import type { WebSocketsInit } from '../src/index.ts'

// the script as this file runs: TypeScript, or built into dist/
const SCRIPT = new URL(`./probe-node${extname(fileURLToPath(import.meta.url))}`, import.meta.url)

export interface ProbeOptions {
  transport: TransportId

  /**
   * Where the node listens, `[]` for none
   */
  listen: string[]

  /**
   * Options of the transport (see transports.ts for what tcp and upstream
   * take of them)
   *
   * @default {}
   */
  init?: WebSocketsInit

  /**
   * libp2p's connection monitor: a ping every `pingInterval` ms on every
   * connection, which is aborted when one takes longer than `pingTimeout` ms
   *
   * @default disabled
   */
  monitor?: { pingInterval: number, pingTimeout: number }
}

export interface ProbeStatus {
  /**
   * Epoch ms, as `now()`
   */
  t: number
  connections: Array<{ id: string, remote: string, direction: string, status: string, transportBlocked?: boolean }>

  /**
   * Bytes through the flood streams of the process, writers alive and
   * writers waiting for 'drain'
   */
  flow: { sent: number, received: number, writers: number, blocked: number }

  /**
   * TCP sockets the process holds (listening ones left out), as the kernel
   * sees them
   */
  held: TcpSocket[]
  fds: number

  /**
   * Our transport's sockets by phase, for a node running it
   */
  sockets?: { listener: Array<Record<string, number>>, dialer: Array<Record<string, number>> }
}

/**
 * A libp2p node in a child process (probe-node.ts), in a network namespace
 * of the caller's if it likes. Its commands, through `child.call()`:
 *
 * `dial` ({ addr }): a new connection, resolves with `{ id, remote, direction }`.
 * `dialInBackground` ({ addr }): answered at once, the outcome reported as
 * `dial:settled` ({ error?, started, t }).
 * `flood` ({ addr, direction: 'send' | 'receive', streams? }): streams that
 * never end on the connection to `addr` (dialed if there is none), written by
 * us or by the remote; resolves once data flows.
 * `ping` ({ addr }): libp2p's ping, resolves with the round trip in ms.
 * `status`: a `ProbeStatus`.
 * `stop`: `node.stop()`, resolves with `{ stopMs, error? }`; the process then
 * exits by itself once nothing holds it.
 *
 * It reports, as they happen (`child.next(type)`), `connection:open` and
 * `connection:close` ({ id, remote, direction, t, error?, local? })
 */
export interface Probe {
  child: Child

  /**
   * Where it listens, with its peer ID; empty if it does not
   */
  addr: string

  status(ms?: number): Promise<ProbeStatus>
}

export interface StartProbeOptions extends ProbeOptions, ChildOptions {
  /**
   * How long the node may take to start
   *
   * @default 30_000
   */
  readyMs?: number
}

export async function startProbe (options: StartProbeOptions): Promise<Probe> {
  const { transport, listen, init, monitor, readyMs, ...childOptions } = options
  const probeOptions: ProbeOptions = { transport, listen, init, monitor }
  const child = new Child(SCRIPT, [JSON.stringify(probeOptions)], {
    name: `probe on ${transport}`,
    ...childOptions
  })
  const { addrs, peerId } = await child.started(readyMs)

  return {
    child,
    addr: addrs.length === 0 || addrs[0].includes('/p2p/') ? addrs[0] ?? '' : `${addrs[0]}/p2p/${peerId}`,
    status: async (ms = 5_000) => child.call('status', {}, ms)
  }
}
