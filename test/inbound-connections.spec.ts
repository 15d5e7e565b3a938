import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { InboundConnections } from '../src/inbound-connections.ts'
import { withDeadline } from './fixtures/deadline.ts'
import { watchTimers } from './fixtures/timers.ts'
import type { InboundConnectionsInit } from '../src/inbound-connections.ts'
import type { MultiaddrConnection } from '@libp2p/interface'
import type net from 'node:net'
import type { WebSocket } from 'ws'

/**
 * A connection whose status the test sets, that records its aborts
 */
class FakeConnection extends TypedEventEmitter<{ close: Event }> {
  status: MultiaddrConnection['status']
  readonly aborts: Error[] = []

  constructor (status: MultiaddrConnection['status']) {
    super()
    this.status = status
  }

  abort (err: Error): void {
    this.aborts.push(err)
    this.closed('aborted')
  }

  closed (status: MultiaddrConnection['status'] = 'closed'): void {
    this.status = status
    this.safeDispatchEvent('close')
  }
}

function inboundConnections (): InboundConnections {
  const logger = defaultLogger()

  return new InboundConnections({
    logger,
    log: logger.forComponent('test:inbound-connections'),
    metrics: {},
    address: () => '127.0.0.1:1'
  } as unknown as InboundConnectionsInit)
}

function asConnections (connections: FakeConnection[]): MultiaddrConnection[] {
  return connections as unknown as MultiaddrConnection[]
}

describe('the inbound connections of a closing listener', () => {
  it('resolves once every connection still open or closing has closed', async () => {
    const open = new FakeConnection('open')
    const closing = new FakeConnection('closing')
    let resolved = false
    const closed = inboundConnections().whenClosed(asConnections([open, closing]), 5_000).then(() => { resolved = true })

    open.closed()
    await Promise.resolve()
    expect(resolved).to.be.false()

    closing.closed()
    await withDeadline(closed, 1_000, 'whenClosed()')
    expect(open.aborts).to.be.empty()
    expect(closing.aborts).to.be.empty()
  })

  it('does not wait for connections that have closed already', async () => {
    await withDeadline(inboundConnections().whenClosed(asConnections([new FakeConnection('closed'), new FakeConnection('reset')]), 5_000), 100, 'whenClosed()')
  })

  it('aborts the connections that did not report their close in time, and only those', async () => {
    const silent = new FakeConnection('open')
    const closingLate = new FakeConnection('closing')
    const reported = new FakeConnection('open')
    const closed = inboundConnections().whenClosed(asConnections([silent, closingLate, reported]), 50)
    reported.closed()

    await withDeadline(closed, 1_000, 'whenClosed()')

    expect(silent.aborts).to.have.lengthOf(1)
    expect(silent.aborts[0]).to.have.property('message', 'The listener closed')
    expect(closingLate.aborts).to.have.lengthOf(1)
    expect(reported.aborts).to.be.empty()
  })

  it('leaves no timer once they have closed', async () => {
    const open = new FakeConnection('open')
    const timers = watchTimers(/src[\\/]inbound-connections\./)

    try {
      const closed = inboundConnections().whenClosed(asConnections([open]), 5_000)
      open.closed()
      await withDeadline(closed, 1_000, 'whenClosed()')
    } finally {
      timers.stop()
    }

    expect(timers.pending()).to.deep.equal([])
  })

  it('terminates a WebSocket whose socket closed before its upgrade could start', () => {
    let terminated = 0
    const websocket = { terminate: () => { terminated++ } } as unknown as WebSocket

    inboundConnections().upgrade(websocket, {} as any, { destroyed: true } as unknown as net.Socket, { host: '127.0.0.1', port: 1 })

    expect(terminated).to.equal(1)
  })
})
