import type { Child } from '../toolbox/supervisor.ts'

/**
 * Start counting this process's CPU time: the function returns the ms used
 * since, user and system
 */
export function cpuClock (): () => number {
  const start = process.cpuUsage()

  return () => {
    const used = process.cpuUsage(start)

    return (used.user + used.system) / 1000
  }
}

/**
 * Listener side: CPU the process used so far, in ms
 */
export async function cpu (): Promise<number> {
  const { user, system } = process.cpuUsage()

  return (user + system) / 1000
}

/**
 * Runner side: `run`, and the CPU ms the listener process used meanwhile
 */
export async function withListenerCpu <T> (listener: Child, run: () => Promise<T>): Promise<{ run: T, listenerCpuMs: number }> {
  const before = await listener.call<number>('cpu')
  const result = await run()
  const after = await listener.call<number>('cpu')

  return { run: result, listenerCpuMs: after - before }
}
