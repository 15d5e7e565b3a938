import { EventEmitter } from 'node:events'
import { expect } from 'aegir/chai'
import { SocketRegistry } from '../src/socket-registry.ts'
import { withDeadline } from './fixtures/deadline.ts'

const PHASES = ['first', 'second', 'third'] as const

type Phase = typeof PHASES[number]

/**
 * A handle whose close the test decides, and that can say it holds nothing
 * once terminated
 */
class Handle extends EventEmitter {
  terminated = false
  destroyedOnTerminate: boolean

  constructor (destroyedOnTerminate = false) {
    super()
    this.destroyedOnTerminate = destroyedOnTerminate
  }

  close (): void {
    this.emit('close')
  }
}

interface Released {
  handle: Handle
  data: string | undefined
}

function registry (released: Released[] = []): SocketRegistry<Handle, Phase, string> {
  return new SocketRegistry<Handle, Phase, string>(PHASES, {
    terminate: handle => { handle.terminated = true },
    isDestroyed: handle => handle.destroyedOnTerminate,
    onClose: (handle, onClose) => { handle.once('close', onClose) },
    onRelease: (handle, data) => { released.push({ handle, data }) }
  })
}

describe('socket registry', () => {
  it('counts handles by phase, every phase present', () => {
    const sockets = registry()
    const a = new Handle()
    const b = new Handle()

    sockets.track(a, 'first')
    sockets.track(b, 'first')
    sockets.advance(b, 'second')

    expect(sockets.counts()).to.deep.equal({ first: 1, second: 1, third: 0 })
    expect(sockets.phaseOf(b)).to.equal('second')
  })

  it('keeps its counts as handles are tracked, move, close and are terminated', () => {
    const sockets = registry()
    const handles = Array.from({ length: 6 }, (_, i) => new Handle(i % 2 === 0))
    const expectCounts = (first: number, second: number, third: number): void => {
      expect(sockets.counts()).to.deep.equal({ first, second, third })
      expect([sockets.count('first'), sockets.count('second'), sockets.count('third')]).to.deep.equal([first, second, third])
      expect(sockets.size).to.equal(first + second + third)
    }

    handles.forEach(handle => { sockets.track(handle, 'first') })
    expectCounts(6, 0, 0)

    sockets.advance(handles[0], 'second')
    sockets.advance(handles[1], 'third')
    sockets.advance(handles[2], 'second')
    expectCounts(3, 2, 1)

    sockets.advance(handles[2], 'third')
    expectCounts(3, 1, 2)

    handles[3].close()
    handles[1].close()
    expectCounts(2, 1, 1)

    // handles 0, 2 and 4 are gone as soon as they are terminated, 5 only
    // once it closes
    expect(sockets.terminateAll()).to.deep.equal({ first: 2, second: 1, third: 1 })
    expectCounts(1, 0, 0)

    handles[5].close()
    expectCounts(0, 0, 0)
  })

  it('releases a handle once, when it closes, with its data', () => {
    const released: Released[] = []
    const sockets = registry(released)
    const handle = new Handle()

    sockets.track(handle, 'first', 'deadline')
    expect(sockets.size).to.equal(1)
    expect(sockets.dataOf(handle)).to.equal('deadline')

    handle.close()
    handle.close()

    expect(sockets.size).to.equal(0)
    expect(sockets.counts()).to.deep.equal({ first: 0, second: 0, third: 0 })
    expect(released).to.deep.equal([{ handle, data: 'deadline' }])
  })

  it('releases a terminated handle once, whether it is destroyed at once or closes later', () => {
    const released: Released[] = []
    const sockets = registry(released)
    const destroyed = new Handle(true)
    const lingering = new Handle(false)

    sockets.track(destroyed, 'first', 'a')
    sockets.track(lingering, 'first', 'b')
    sockets.terminateAll()
    destroyed.close()

    expect(released).to.deep.equal([{ handle: destroyed, data: 'a' }])

    lingering.close()
    lingering.close()

    expect(released).to.deep.equal([{ handle: destroyed, data: 'a' }, { handle: lingering, data: 'b' }])
  })

  it('refuses to track a handle twice, even after it left', () => {
    const sockets = registry()
    const handle = new Handle()

    sockets.track(handle, 'first')
    expect(() => { sockets.track(handle, 'second') }).to.throw()
    expect(sockets.size).to.equal(1)
    expect(sockets.phaseOf(handle)).to.equal('first')

    handle.close()
    expect(() => { sockets.track(handle, 'first') }).to.throw()
    expect(sockets.size).to.equal(0)
  })

  it('moves handles forward only: a move back or to the same phase throws', () => {
    const sockets = registry()
    const handle = new Handle()

    sockets.track(handle, 'first')
    expect(() => { sockets.advance(handle, 'first') }).to.throw(/back/)

    // a phase may be skipped
    expect(sockets.advance(handle, 'third')).to.be.true()
    expect(() => { sockets.advance(handle, 'second') }).to.throw(/back/)
    expect(() => { sockets.advance(handle, 'third') }).to.throw(/back/)

    expect(sockets.phaseOf(handle)).to.equal('third')
    expect(sockets.counts()).to.deep.equal({ first: 0, second: 0, third: 1 })
  })

  it('throws when moving a handle it never held', () => {
    const sockets = registry()

    expect(() => { sockets.advance(new Handle(), 'second') }).to.throw(/never tracked/)
    expect(sockets.size).to.equal(0)
  })

  it('ignores, returning false, moving a handle that has left', () => {
    const sockets = registry()
    const closed = new Handle()
    const terminated = new Handle(true)

    sockets.track(closed, 'first')
    sockets.track(terminated, 'first')
    closed.close()
    sockets.terminateAll()

    expect(sockets.advance(closed, 'second')).to.be.false()
    expect(sockets.advance(terminated, 'first')).to.be.false()
    expect(sockets.size).to.equal(0)
    expect(sockets.counts()).to.deep.equal({ first: 0, second: 0, third: 0 })
  })

  it('terminates every handle, runs the work of its phase, and reports the counts it terminated', () => {
    const sockets = registry()
    const a = new Handle()
    const b = new Handle()
    let aborted = 0

    sockets.track(a, 'first')
    sockets.track(b, 'first')
    sockets.advance(b, 'second', () => { aborted++ })

    expect(sockets.terminateAll()).to.deep.equal({ first: 1, second: 1, third: 0 })
    expect(a.terminated && b.terminated).to.be.true()
    expect(aborted).to.equal(1)
  })

  it('replaces the termination work of a phase when the handle moves on', () => {
    const sockets = registry()
    const handle = new Handle()
    let stale = 0

    sockets.track(handle, 'first')
    sockets.advance(handle, 'second', () => { stale++ })
    sockets.advance(handle, 'third')
    sockets.terminateAll()

    expect(stale).to.equal(0)
    expect(handle.terminated).to.be.true()
  })

  it('terminates every handle even when the termination work of a phase throws', () => {
    const sockets = registry()
    const failing = new Handle()
    const other = new Handle()

    sockets.track(failing, 'first')
    sockets.advance(failing, 'second', () => { throw new Error('boom') })
    sockets.track(other, 'first')

    expect(sockets.terminateAll()).to.deep.equal({ first: 1, second: 1, third: 0 })
    expect(failing.terminated).to.be.true()
    expect(other.terminated).to.be.true()
  })

  it('keeps a terminated handle until it closes, unless it is already destroyed', async () => {
    const sockets = registry()
    const lingering = new Handle(false)
    const destroyed = new Handle(true)

    sockets.track(lingering, 'first')
    sockets.track(destroyed, 'first')
    sockets.terminateAll()

    expect(sockets.has(destroyed)).to.be.false()
    expect(sockets.has(lingering)).to.be.true()

    const empty = sockets.whenEmpty()
    lingering.close()
    await withDeadline(empty, 1_000, 'the registry emptying')
    expect(sockets.size).to.equal(0)
  })

  it('gives up waiting to empty when its signal aborts', async () => {
    const sockets = registry()
    sockets.track(new Handle(), 'first')

    await expect(sockets.whenEmpty({ signal: AbortSignal.timeout(20) })).to.eventually.be.rejected()
      .with.property('name', 'TimeoutError')
    expect(sockets.size).to.equal(1)
  })

  it('is empty at once when it holds nothing', async () => {
    await withDeadline(registry().whenEmpty(), 100, 'whenEmpty() on an empty registry')
  })
})
