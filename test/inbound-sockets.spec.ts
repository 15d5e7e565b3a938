import net from 'node:net'
import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { TrustedProxies } from '../src/client-address.ts'
import { InboundSockets } from '../src/inbound-sockets.ts'
import { withDeadline } from './fixtures/deadline.ts'
import { watchTimers } from './fixtures/timers.ts'
import type http from 'node:http'

/**
 * The inbound owner on its own: no listener, no HTTP server
 */
function inboundSockets (events: string[] = []): InboundSockets {
  return new InboundSockets({
    log: defaultLogger().forComponent('test:inbound-sockets'),
    trustedProxies: new TrustedProxies(),
    address: () => '127.0.0.1:1',
    countEvent: event => { events.push(event) },
    serverFor: () => undefined
  })
}

describe('the inbound owner', () => {
  let server: net.Server
  const sockets: net.Socket[] = []

  /**
   * The server side of a fresh loopback connection
   */
  async function accepted (): Promise<net.Socket> {
    const socket = new Promise<net.Socket>(resolve => server.once('connection', resolve))
    sockets.push(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'))
    const serverSide = await withDeadline(socket, 5_000, 'the connection')
    sockets.push(serverSide)

    return serverSide
  }

  /**
   * Destroy a socket and wait for its close, which the owner sees first
   */
  async function destroy (socket: net.Socket): Promise<void> {
    const closed = new Promise(resolve => socket.once('close', resolve))
    socket.destroy()
    await withDeadline(closed, 5_000, 'the socket closing')
  }

  beforeEach(async () => {
    server = net.createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  })

  afterEach(async () => {
    sockets.splice(0).forEach(socket => socket.destroy())
    await new Promise(resolve => server.close(resolve))
  })

  it('lets go of a socket that closed during its handshake, its deadline with it', async () => {
    const events: string[] = []
    const owner = inboundSockets(events)
    const timers = watchTimers(/src[\\/]inbound-sockets\./)
    let socket: net.Socket

    try {
      socket = await accepted()
      owner.admit(socket, 'accepted', socket.remoteAddress)
      expect(timers.pending()).to.have.lengthOf(1)

      await destroy(socket)
    } finally {
      timers.stop()
    }

    expect(timers.pending()).to.deep.equal([])
    expect(owner.phaseOf(socket)).to.be.undefined()
    expect(events).to.deep.equal(['close'])
  })

  it('does not move a socket that is gone on to another phase', async () => {
    const owner = inboundSockets()
    const socket = await accepted()
    owner.admit(socket, 'accepted', socket.remoteAddress)
    await destroy(socket)

    expect(owner.advance(socket, 'http')).to.be.false()
    expect(owner.counts()).to.deep.include({ accepted: 0, http: 0 })
  })

  it('does not serve a request whose socket is not one of its own', async () => {
    const owner = inboundSockets()
    const stranger = await accepted()

    expect(owner.serve({ socket: stranger } as unknown as http.IncomingMessage, {} as unknown as http.ServerResponse)).to.be.false()
  })
})
