/**
 * One scenario against one transport on a network path of its own: fresh
 * namespaces, fresh processes, and everything gone when it ends, whatever
 * happened
 */
import { createNetnsPair, NODE_ADDRESS, PEER_ADDRESS, tcpTableOf } from '../../toolbox/netns.ts'
import { startProbe } from '../../toolbox/probe.ts'
import { parseTcpTable } from '../../toolbox/tcp-table.ts'
import { delay, now } from '../../toolbox/time.ts'
import { TRANSPORTS } from '../../toolbox/transports.ts'
import type { NetnsPair } from '../../toolbox/netns.ts'
import type { Probe, ProbeOptions } from '../../toolbox/probe.ts'
import type { TransportId } from '../../toolbox/transports.ts'

/**
 * Waits a scenario may not exceed; past them a figure is "not within"
 */
export const DEADLINES = {
  // starting a node, dialing, getting data to flow
  setupMs: 20_000,
  // node.stop() resolving; past it the stop hangs
  stopMs: 15_000,
  // the process exiting by itself once stop resolved
  exitMs: 6_000
}

/**
 * How often the node's sockets are looked at while waiting for them to go
 */
const POLL_MS = 50

export type Role = 'node' | 'peer'

export interface Trial {
  transport: TransportId
  pair: NetnsPair

  /**
   * Start a probe in the role's namespace, listening on its address
   */
  start(role: Role, options?: Omit<ProbeOptions, 'transport' | 'listen'>): Promise<Probe>

  /**
   * Take the link down; resolves with the moment, as `now()`
   */
  cut(): Promise<number>
  restore(): Promise<number>
}

/**
 * Where the role listens with this transport
 */
export function listenAddr (transport: TransportId, role: Role): string {
  return `/ip4/${role === 'node' ? NODE_ADDRESS : PEER_ADDRESS}/tcp/0${TRANSPORTS[transport].suffix}`
}

/**
 * An address in the peer's namespace where nothing listens, for dials
 */
export function unansweredAddr (transport: TransportId): string {
  return `/ip4/${PEER_ADDRESS}/tcp/4001${TRANSPORTS[transport].suffix}`
}

export async function runTrial <T> (name: string, transport: TransportId, run: (trial: Trial) => Promise<T>): Promise<T> {
  const pair = await createNetnsPair()
  const probes: Probe[] = []

  const trial: Trial = {
    transport,
    pair,
    start: async (role, options = {}) => {
      const probe = await startProbe({
        transport,
        listen: [listenAddr(transport, role)],
        netns: pair[role],
        name: `${role} (${name}/${transport})`,
        readyMs: DEADLINES.setupMs,
        // no scenario takes a minute; a child that does is killed
        deadlineMs: 90_000,
        ...options
      })
      probes.push(probe)

      return probe
    },
    cut: async () => {
      await pair.cut()
      return now()
    },
    restore: async () => {
      await pair.restore()
      return now()
    }
  }

  try {
    return await run(trial)
  } finally {
    for (const { child } of probes) {
      child.kill()
    }

    await Promise.all(probes.map(async ({ child }) => child.exited))
    await pair.destroy()
  }
}

export interface Watched {
  /**
   * ms from `since` to the node's libp2p connection closing, and why
   */
  closeMs?: number
  reason?: string

  /**
   * ms from `since` to the node holding no TCP socket to the peer
   */
  freedMs?: number

  /**
   * The transport held the muxer back (backpressure) at some point in the
   * window
   */
  blocked: boolean
}

/**
 * Watch the node until its connection to the peer closed and its socket is
 * gone (only the socket, for a dial that never made a connection), or
 * `windowMs` after `since` ran out
 */
export async function watchNode (probe: Probe, since: number, windowMs: number, connected = true): Promise<Watched> {
  const watched: Watched = { blocked: false }

  while (now() - since < windowMs) {
    const close = await probe.child.next('connection:close', 0)

    if (close != null && watched.closeMs == null) {
      watched.closeMs = close.t - since
      watched.reason = close.error ?? (close.local === true ? 'closed' : 'closed by the remote')
    }

    const status = await probe.status()
    watched.blocked ||= status.connections.some(c => c.transportBlocked === true)

    if (watched.freedMs == null && !status.held.some(s => s.remote.startsWith(`${PEER_ADDRESS}:`))) {
      watched.freedMs = status.t - since
    }

    if ((watched.closeMs != null || !connected) && watched.freedMs != null) {
      break
    }

    await delay(POLL_MS)
  }

  return watched
}

export interface Stopped {
  /**
   * How long `node.stop()` took, if it resolved within the deadline
   */
  stopMs?: number
  stopError?: string

  /**
   * ms from stop resolving to the process exiting by itself, if it did
   * within the deadline
   */
  exitMs?: number

  /**
   * What the kernel still holds in the node's namespace once the process is
   * gone: orphans sending their FIN or unsent data into the void
   */
  leftovers: string[]

  /**
   * The first line of an uncaught error in the node's output
   */
  crash?: string
}

/**
 * Stop the node, time the stop and the exit that should follow, and look at
 * what the kernel kept
 */
export async function stopNode (probe: Probe, pair: NetnsPair): Promise<Stopped> {
  const stopped: Stopped = { leftovers: [] }
  const reply = await probe.child.ask('stop', {}, DEADLINES.stopMs)

  if (reply?.error != null) {
    stopped.stopError = String(reply.error).split('\n')[0]
  } else if (reply != null) {
    stopped.stopMs = reply.result.stopMs
    stopped.stopError = reply.result.error
    const exit = await probe.child.waitExit(DEADLINES.exitMs)

    if (exit != null && !exit.killed) {
      stopped.exitMs = exit.at - reply.at
      stopped.leftovers = await leftovers(pair)
    }
  }

  stopped.crash = probe.child.crash

  return stopped
}

/**
 * The sockets of the node's namespace other than listening ones, e.g.
 * `FIN_WAIT1 3.1 MiB unsent`
 */
export async function leftovers (pair: NetnsPair): Promise<string[]> {
  return parseTcpTable(await tcpTableOf(pair.node))
    .filter(socket => socket.state !== 'LISTEN')
    .map(socket => socket.sendQueue > 0 ? `${socket.state} ${formatBytes(socket.sendQueue)} unsent` : socket.state)
}

export function formatBytes (bytes: number): string {
  if (bytes >= 1024 * 1024) {
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
  }

  return bytes >= 1024 ? `${(bytes / 1024).toFixed(0)} KiB` : `${bytes} B`
}
