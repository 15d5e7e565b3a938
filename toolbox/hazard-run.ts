import { startRemoteNode } from './remote-node.ts'
import { withDeadline } from './time.ts'
import type { Hazard, Setup } from './hazards.ts'
import type { RemoteNode, RemoteNodeOptions } from './remote-node.ts'
import type { TransportId } from './transports.ts'

export interface Deadlines {
  /**
   * Longest wait for starting nodes and bringing the hazard about
   */
  setupMs: number

  /**
   * Longest wait for `node.stop()` to resolve
   */
  stopMs: number

  /**
   * Longest wait, once stop has resolved, for the process to exit by itself
   */
  exitMs: number
}

export interface Result {
  hazard: string
  transport: TransportId

  /**
   * How long `node.stop()` took, if it resolved before the deadline
   */
  stopMs?: number

  /**
   * How long the process took to exit after stop resolved, if it did before
   * the deadline
   */
  exitMs?: number

  stopHang: boolean
  exitHang: boolean

  /**
   * The setup failed, or stop rejected
   */
  error?: string

  /**
   * The caller's own deadline ended the scenario: no figures
   */
  cutOff?: boolean
}

/**
 * Run one hazard against one transport in fresh processes: set it up, stop
 * the node under test, time the stop and the exit that should follow
 */
export async function runHazard (hazard: Hazard, transport: TransportId, deadlines: Deadlines): Promise<Result> {
  const result: Result = { hazard: hazard.id, transport, stopHang: false, exitHang: false }
  const nodes: RemoteNode[] = []
  const cleanups: Array<() => unknown> = []

  const start = async (role: string, options: RemoteNodeOptions = {}): Promise<RemoteNode> => {
    const node = await startRemoteNode(transport, {
      name: `${role} (${hazard.id}/${transport})`,
      readyMs: deadlines.setupMs,
      ...options
    })
    nodes.push(node)

    return node
  }

  const setup: Setup = {
    transport,
    subject: async (options) => start('node under test', options),
    peer: async () => start('peer'),
    connect: async (from, addr) => { await from.child.call('hold', { addr }, deadlines.setupMs) },
    within: async (promise, what) => withDeadline(promise, deadlines.setupMs, what),
    defer: (cleanup) => { cleanups.push(cleanup) }
  }

  try {
    const { child } = await hazard.setup(setup)
    const stopped = await child.ask('stop', {}, deadlines.stopMs)

    if (stopped == null) {
      if (await child.waitExit(0) == null) {
        result.stopHang = true
        return result
      }

      throw new Error(`${child.name} ${child.describeExit()} during node.stop()\n${child.output.trim()}`)
    }

    if (stopped.error != null) {
      throw new Error(stopped.error)
    }

    // from here on the child only has to go away, nobody asks it anything
    result.stopMs = stopped.result.stopMs
    result.error = stopped.result.error
    const exit = await child.waitExit(deadlines.exitMs)

    if (exit == null) {
      result.exitHang = true
    } else {
      result.exitMs = exit.at - stopped.at
    }
  } catch (err: any) {
    result.error = err.message
  } finally {
    for (const { child } of nodes) {
      child.kill()
    }

    await Promise.all(cleanups.map(async cleanup => cleanup()))
    await Promise.all(nodes.map(async ({ child }) => child.exited))
  }

  return result
}
