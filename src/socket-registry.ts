import { raceSignal } from 'race-signal'
import type { AbortOptions } from '@libp2p/interface'

/**
 * A handle the registry can own: something that emits `close` once when it is
 * gone, and can be terminated at any time
 */
export interface SocketRegistryInit<Handle> {
  /**
   * Destroy the handle without any graceful exchange with the peer
   */
  terminate(handle: Handle): void

  /**
   * Call `onClose` once when the handle has been destroyed
   */
  onClose(handle: Handle, onClose: () => void): void

  /**
   * Whether a handle that was just terminated holds nothing any more, before
   * its close is reported. Without it, handles leave on `onClose` only
   */
  isDestroyed?(handle: Handle): boolean
}

interface Entry<Phase> {
  phase: Phase

  /**
   * Extra work to do on termination in this phase, e.g. aborting an upgrade
   */
  onTerminate?(): void
}

/**
 * Owns every socket of one listener or one transport from the moment it exists
 * until it is destroyed, and knows which phase each one is in. A socket leaves
 * the registry exactly once: when its close is reported, or when terminating
 * it has already released everything it held (`isDestroyed`). So "empty"
 * means that no socket is left, not that we asked them to go
 */
export class SocketRegistry<Handle extends object, Phase extends string> {
  private readonly entries: Map<Handle, Entry<Phase>>
  private readonly phases: readonly Phase[]
  private readonly init: SocketRegistryInit<Handle>
  private emptied?: PromiseWithResolvers<void>

  constructor (phases: readonly Phase[], init: SocketRegistryInit<Handle>) {
    this.entries = new Map()
    this.phases = phases
    this.init = init
  }

  get size (): number {
    return this.entries.size
  }

  has (handle: Handle): boolean {
    return this.entries.has(handle)
  }

  phaseOf (handle: Handle): Phase | undefined {
    return this.entries.get(handle)?.phase
  }

  track (handle: Handle, phase: Phase): void {
    if (this.entries.has(handle)) {
      return
    }

    this.entries.set(handle, { phase })
    this.init.onClose(handle, () => {
      this.release(handle)
    })
  }

  /**
   * Move a tracked handle to its next phase. `onTerminate` replaces whatever
   * the previous phase registered, since it belongs to that phase's work
   */
  advance (handle: Handle, phase: Phase, onTerminate?: () => void): void {
    const entry = this.entries.get(handle)

    if (entry == null) {
      return
    }

    entry.phase = phase
    entry.onTerminate = onTerminate
  }

  /**
   * Number of tracked handles in each phase, every phase present
   */
  counts (): Record<Phase, number> {
    const counts: Partial<Record<Phase, number>> = {}

    for (const phase of this.phases) {
      counts[phase] = 0
    }

    for (const { phase } of this.entries.values()) {
      counts[phase] = (counts[phase] ?? 0) + 1
    }

    return counts as Record<Phase, number>
  }

  /**
   * Terminate every tracked handle, whatever its phase, and return how many
   * there were in each phase. They leave the registry as their `close` events
   * arrive: await `whenEmpty()` for that
   */
  terminateAll (): Record<Phase, number> {
    const counts = this.counts()

    for (const [handle, entry] of [...this.entries]) {
      try {
        entry.onTerminate?.()
      } catch {
        // that work is best effort: the handle below is what must go, and
        // so must every other one
      }

      this.init.terminate(handle)

      if (this.init.isDestroyed?.(handle) === true) {
        this.release(handle)
      }
    }

    return counts
  }

  /**
   * Resolves once no handle is tracked; rejects if `signal` aborts first
   */
  async whenEmpty (options: AbortOptions = {}): Promise<void> {
    if (this.entries.size === 0) {
      return
    }

    this.emptied ??= Promise.withResolvers()

    await raceSignal(this.emptied.promise, options.signal)
  }

  private release (handle: Handle): void {
    if (!this.entries.delete(handle)) {
      return
    }

    if (this.entries.size === 0 && this.emptied != null) {
      this.emptied.resolve()
      this.emptied = undefined
    }
  }
}
