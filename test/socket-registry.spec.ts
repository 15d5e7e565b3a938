import { EventEmitter } from 'node:events'
import { expect } from 'aegir/chai'
import { SocketRegistry } from '../src/socket-registry.ts'
import { withDeadline } from './fixtures/deadline.ts'

type Phase = 'first' | 'second'

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

function registry (): SocketRegistry<Handle, Phase> {
  return new SocketRegistry<Handle, Phase>(['first', 'second'], {
    terminate: handle => { handle.terminated = true },
    isDestroyed: handle => handle.destroyedOnTerminate,
    onClose: (handle, onClose) => { handle.once('close', onClose) }
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

    expect(sockets.counts()).to.deep.equal({ first: 1, second: 1 })
    expect(sockets.phaseOf(b)).to.equal('second')
  })

  it('releases a handle once, when it closes', () => {
    const sockets = registry()
    const handle = new Handle()

    sockets.track(handle, 'first')
    sockets.track(handle, 'second')
    expect(sockets.size).to.equal(1)
    expect(sockets.phaseOf(handle)).to.equal('first')

    handle.close()
    handle.close()

    expect(sockets.size).to.equal(0)
    expect(sockets.counts()).to.deep.equal({ first: 0, second: 0 })
  })

  it('ignores advancing a handle it does not hold', () => {
    const sockets = registry()

    sockets.advance(new Handle(), 'second')

    expect(sockets.size).to.equal(0)
  })

  it('terminates every handle, runs the work of its phase, and reports the counts it terminated', () => {
    const sockets = registry()
    const a = new Handle()
    const b = new Handle()
    let aborted = 0

    sockets.track(a, 'first')
    sockets.track(b, 'first')
    sockets.advance(b, 'second', () => { aborted++ })

    expect(sockets.terminateAll()).to.deep.equal({ first: 1, second: 1 })
    expect(a.terminated && b.terminated).to.be.true()
    expect(aborted).to.equal(1)
  })

  it('replaces the termination work of a phase when the handle moves on', () => {
    const sockets = registry()
    const handle = new Handle()
    let stale = 0

    sockets.track(handle, 'first')
    sockets.advance(handle, 'first', () => { stale++ })
    sockets.advance(handle, 'second')
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

    expect(sockets.terminateAll()).to.deep.equal({ first: 1, second: 1 })
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
