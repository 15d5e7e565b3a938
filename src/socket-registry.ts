import { raceSignal } from 'race-signal'
import type { AbortOptions } from '@libp2p/interface'

/**
 * A handle the registry can own: something that emits `close` once when it is
 * gone, and can be terminated at any time
 */
export interface SocketRegistryInit<Handle, Data> {
  /**
   * Destroy the handle without any graceful exchange with the peer
   */
  terminate(handle: Handle): void

  /**
   * Call `onClose` once when the handle has been destroyed. The registry
   * subscribes once per handle: owners do their own clean-up in `onRelease`
   */
  onClose(handle: Handle, onClose: () => void): void

  /**
   * Whether a handle that was just terminated holds nothing any more, before
   * its close is reported. Without it, handles leave on `onClose` only
   */
  isDestroyed?(handle: Handle): boolean

  /**
   * Called once as a handle leaves the registry, with the data it was
   * tracked with, e.g. to clear a timer of the owner's
   */
  onRelease?(handle: Handle, data: Data | undefined): void
}

interface SocketRecord<Phase, Data> {
  phase: Phase

  /**
   * Position of `phase` in the registry's phases, to compare moves
   */
  rank: number

  /**
   * Extra work to do on termination in this phase, e.g. aborting an upgrade
   */
  onTerminate?(): void

  /**
   * Whatever else the owner keeps per handle
   */
  data?: Data
}

/**
 * Owns every socket of one listener or one transport from the moment it exists
 * until it is destroyed, and knows which phase each one is in. Phases only
 * move forward, in the order given. A socket leaves the registry exactly once:
 * when its close is reported, or when terminating it has already released
 * everything it held (`isDestroyed`). So "empty" means that no socket is left,
 * not that we asked them to go
 */
export class SocketRegistry<Handle extends object, Phase extends string, Data = undefined> {
  private readonly records: Map<Handle, SocketRecord<Phase, Data>>
  private readonly ranks: Map<Phase, number>
  private readonly tally: Record<Phase, number>
  private readonly init: SocketRegistryInit<Handle, Data>

  /**
   * Handles that were tracked and have left: a late move of one of them is a
   * socket that closed first, not a mistake
   */
  private readonly departed: WeakSet<Handle>
  private emptied?: PromiseWithResolvers<void>

  constructor (phases: readonly Phase[], init: SocketRegistryInit<Handle, Data>) {
    this.records = new Map()
    this.ranks = new Map(phases.map((phase, rank) => [phase, rank]))
    this.tally = Object.fromEntries(phases.map(phase => [phase, 0])) as Record<Phase, number>
    this.departed = new WeakSet()
    this.init = init
  }

  get size (): number {
    return this.records.size
  }

  has (handle: Handle): boolean {
    return this.records.has(handle)
  }

  phaseOf (handle: Handle): Phase | undefined {
    return this.records.get(handle)?.phase
  }

  dataOf (handle: Handle): Data | undefined {
    return this.records.get(handle)?.data
  }

  /**
   * The data of every tracked handle that has some
   */
  allData (): Data[] {
    const all: Data[] = []

    for (const { data } of this.records.values()) {
      if (data != null) {
        all.push(data)
      }
    }

    return all
  }

  /**
   * Own a new handle, in its first phase. A handle is tracked once: tracking
   * it again, even after it left, is a mistake of the caller's
   */
  track (handle: Handle, phase: Phase, data?: Data): void {
    if (this.records.has(handle) || this.departed.has(handle)) {
      throw new Error('This socket is tracked already')
    }

    this.records.set(handle, { phase, rank: this.rankOf(phase), data })
    this.tally[phase]++
    this.init.onClose(handle, () => {
      this.release(handle)
    })
  }

  /**
   * Move a tracked handle to a later phase. `onTerminate` replaces whatever
   * the previous phase registered, since it belongs to that phase's work.
   *
   * Returns false, doing nothing, if the handle has already left: it closed
   * while the caller was waiting for the event that moves it on. Throws if the
   * handle was never tracked or the phase is not later than its current one
   */
  advance (handle: Handle, phase: Phase, onTerminate?: () => void): boolean {
    const record = this.records.get(handle)

    if (record == null) {
      if (this.departed.has(handle)) {
        return false
      }

      throw new Error(`Cannot move a socket that was never tracked to ${phase}`)
    }

    const rank = this.rankOf(phase)

    if (rank <= record.rank) {
      throw new Error(`Cannot move a socket from ${record.phase} back to ${phase}`)
    }

    this.tally[record.phase]--
    this.tally[phase]++
    record.phase = phase
    record.rank = rank
    record.onTerminate = onTerminate

    return true
  }

  /**
   * Number of tracked handles in each phase, every phase present
   */
  counts (): Record<Phase, number> {
    return { ...this.tally }
  }

  /**
   * Number of tracked handles in one phase
   */
  count (phase: Phase): number {
    return this.tally[phase]
  }

  /**
   * Terminate every tracked handle, whatever its phase, and return how many
   * there were in each phase. They leave the registry as their `close` events
   * arrive: await `whenEmpty()` for that
   */
  terminateAll (): Record<Phase, number> {
    const counts = this.counts()

    for (const [handle, record] of [...this.records]) {
      try {
        record.onTerminate?.()
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
    if (this.records.size === 0) {
      return
    }

    this.emptied ??= Promise.withResolvers()

    await raceSignal(this.emptied.promise, options.signal)
  }

  private rankOf (phase: Phase): number {
    const rank = this.ranks.get(phase)

    if (rank == null) {
      throw new Error(`Unknown phase ${phase}`)
    }

    return rank
  }

  private release (handle: Handle): void {
    const record = this.records.get(handle)

    if (record == null) {
      return
    }

    this.records.delete(handle)
    this.departed.add(handle)
    this.tally[record.phase]--

    if (this.records.size === 0 && this.emptied != null) {
      this.emptied.resolve()
      this.emptied = undefined
    }

    this.init.onRelease?.(handle, record.data)
  }
}
