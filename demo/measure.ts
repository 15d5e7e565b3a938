import { Child } from './processes.ts'
import { TRANSPORTS } from './transports.ts'
import type { Hazard, HazardId, Setup, Started } from './hazards.ts'
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
  hazard: HazardId
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
   * The demo's own deadline ended the scenario: no figures
   */
  cutOff?: boolean
}

/**
 * Run one hazard against one transport in fresh processes: set it up, stop
 * the node under test, time the stop and the exit that should follow
 */
export async function measure (hazard: Hazard, transport: TransportId, deadlines: Deadlines): Promise<Result> {
  const result: Result = { hazard: hazard.id, transport, stopHang: false, exitHang: false }
  const children: Child[] = []
  const cleanups: Array<() => void> = []

  const within = async <T> (promise: Promise<T>, what: string): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined

    try {
      return await Promise.race([
        promise,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => { reject(new Error(`${what} took more than ${deadlines.setupMs}ms`)) }, deadlines.setupMs)
        })
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  const start = async (script: string, name: string): Promise<Started> => {
    // the parent drives the hazard over IPC; the hazard in the arguments only
    // tells which scenario a process in `ps` belongs to
    const child = new Child(script, [transport, hazard.id], `${name} (${hazard.id}/${transport})`)
    children.push(child)
    const { addrs } = await child.expect('listening', deadlines.setupMs)

    return { child, addr: addrs[0] }
  }

  const setup: Setup = {
    transport: TRANSPORTS[transport],
    subject: async () => start('./scenario.ts', 'node under test'),
    peer: async () => start('./peer.ts', 'peer'),
    connect: async (from, addr) => {
      from.child.send({ type: 'dial', addr, hold: true })
      await from.child.expect('dialed', deadlines.setupMs)
    },
    within,
    defer: (cleanup) => { cleanups.push(cleanup) }
  }

  try {
    const subject = await hazard.setup(setup)

    subject.send({ type: 'stop' })
    const stopped = await subject.next('stopped', deadlines.stopMs)

    if (stopped == null) {
      result.stopHang = true
      return result
    }

    // from here on the child only has to go away, nobody asks it anything
    const stoppedAt = performance.now()
    result.stopMs = stopped.stopMs
    result.error = stopped.error

    if (await subject.waitExit(deadlines.exitMs)) {
      result.exitMs = performance.now() - stoppedAt
    } else {
      result.exitHang = true
    }
  } catch (err: any) {
    result.error = err.message
  } finally {
    for (const child of children) {
      child.kill()
    }

    for (const cleanup of cleanups) {
      cleanup()
    }

    await Promise.all(children.map(async child => child.exited))
  }

  return result
}
