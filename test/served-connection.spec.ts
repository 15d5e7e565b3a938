import { EventEmitter } from 'node:events'
import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { ServedConnection } from '../src/served-connection.ts'
import { withDeadline } from './fixtures/deadline.ts'
import { watchTimers } from './fixtures/timers.ts'
import type { ServedConnectionInit } from '../src/served-connection.ts'
import type { TimerWatch } from './fixtures/timers.ts'
import type http from 'node:http'
import type net from 'node:net'

/**
 * A socket that records being destroyed
 */
function fakeSocket (): net.Socket & { whenDestroyed: Promise<void> } {
  let destroyed: () => void = () => {}
  const whenDestroyed = new Promise<void>(resolve => { destroyed = resolve })
  const socket = {
    destroyed: false,
    whenDestroyed,
    destroy () {
      socket.destroyed = true
      destroyed()
    }
  }

  return socket as unknown as net.Socket & { whenDestroyed: Promise<void> }
}

/**
 * A response whose end the test decides
 */
function fakeResponse (): http.ServerResponse {
  return new EventEmitter() as unknown as http.ServerResponse
}

describe('a plain HTTP connection served by the user\'s handler', () => {
  let timers: TimerWatch
  let events: string[]

  function served (socket: net.Socket, init: Partial<ServedConnectionInit> = {}): ServedConnection {
    return new ServedConnection(socket, {
      log: defaultLogger().forComponent('test:served-connection'),
      idleTimeout: 60_000,
      countEvent: event => { events.push(event) },
      serving: () => true,
      ...init
    })
  }

  beforeEach(() => {
    events = []
    timers = watchTimers(/src[\\/]served-connection\./)
  })

  afterEach(() => {
    timers.stop()
  })

  it('is destroyed once idle for idleTimeout after its last response, and counted', async () => {
    const socket = fakeSocket()
    const res = fakeResponse()
    served(socket, { idleTimeout: 10 }).serve(res)

    res.emit('close')
    await withDeadline(socket.whenDestroyed, 1_000, 'the idle connection being destroyed')

    expect(events).to.deep.equal(['request_idle'])
  })

  it('is not idle while any of its requests is being answered', () => {
    const connection = served(fakeSocket())
    const first = fakeResponse()
    const second = fakeResponse()
    connection.serve(first)
    connection.serve(second)

    first.emit('close')
    expect(timers.pending()).to.be.empty()

    second.emit('close')
    expect(timers.pending()).to.have.lengthOf(1)
    connection.stop()
  })

  it('is not idle once another request arrives', () => {
    const connection = served(fakeSocket())
    const first = fakeResponse()
    connection.serve(first)
    first.emit('close')
    expect(timers.pending()).to.have.lengthOf(1)

    connection.serve(fakeResponse())

    expect(timers.pending()).to.be.empty()
  })

  it('has no idle limit of ours with an idleTimeout of 0', () => {
    const res = fakeResponse()
    served(fakeSocket(), { idleTimeout: 0 }).serve(res)

    res.emit('close')

    expect(timers.pending()).to.be.empty()
  })

  it('is not idle HTTP once it has asked for a WebSocket upgrade', () => {
    const res = fakeResponse()
    served(fakeSocket(), { serving: () => false }).serve(res)

    res.emit('close')

    expect(timers.pending()).to.be.empty()
  })

  it('leaves no timer once stopped', () => {
    const connection = served(fakeSocket())
    const res = fakeResponse()
    connection.serve(res)
    res.emit('close')

    connection.stop()

    expect(timers.pending()).to.be.empty()
  })
})
