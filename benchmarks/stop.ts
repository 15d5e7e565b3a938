import { letGo } from '../toolbox/supervised.ts'
import { now } from '../toolbox/time.ts'
import { cpuClock } from './cpu.ts'
import type { Child } from '../toolbox/supervisor.ts'
import type { Libp2p } from '@libp2p/interface'

interface StopRun {
  startedAt: number
  closeMs?: number
  stopMs: number
  /**
   * CPU the listener used from the start of the shutdown until node.stop()
   * resolved: steadier than wall time on a busy machine
   */
  cpuMs: number
}

/**
 * Listeners the node's transport manager holds: libp2p does not expose them
 */
function listenersOf (node: Libp2p): Array<{ close(): Promise<void> }> {
  return (node as any).components.transportManager.getListeners()
}

/**
 * Listener side. After answering, the process holds nothing of ours: whatever
 * keeps it alive from then on was left by libp2p or the transport
 */
export function listenerCommands (node: Libp2p): Record<string, (args: any) => Promise<any>> {
  return {
    async stop ({ closeListenerFirst }: { closeListenerFirst: boolean }): Promise<StopRun> {
      const cpuMs = cpuClock()
      const startedAt = now()
      let closeMs: number | undefined

      if (closeListenerFirst) {
        await Promise.all(listenersOf(node).map(async listener => listener.close()))
        closeMs = now() - startedAt
      }

      const stopping = now()
      await node.stop()

      const stopMs = now() - stopping
      letGo()

      return { startedAt, closeMs, stopMs, cpuMs: cpuMs() }
    }
  }
}

export interface StopResult {
  /**
   * `listener.close()` alone, when asked for
   */
  closeMs?: number
  stopMs: number
  cpuMs: number
  /**
   * From the start of the shutdown to the process's exit, undefined if it had
   * to be killed
   */
  exitMs?: number
}

/**
 * Runner side: shut the listener down and wait for its process to exit by
 * itself, killing it after `exitDeadline` ms
 */
export async function measureStop (listener: Child, closeListenerFirst: boolean, exitDeadline: number): Promise<StopResult> {
  const run = await listener.call<StopRun>('stop', { closeListenerFirst }, exitDeadline)
  const exit = await listener.exitWithin(exitDeadline)

  return {
    closeMs: run.closeMs,
    stopMs: run.stopMs,
    cpuMs: run.cpuMs,
    exitMs: exit.killed ? undefined : exit.at - run.startedAt
  }
}
