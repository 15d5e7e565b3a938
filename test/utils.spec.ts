import net from 'node:net'
import tls from 'node:tls'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { resetSocket } from '../src/utils.ts'
import { certificate } from './fixtures/certificate.ts'
import { withDeadline } from './fixtures/deadline.ts'

const DEADLINE = 5_000

describe('resetSocket', () => {
  let server: net.Server | undefined
  const sockets: net.Socket[] = []

  /**
   * Both ends of a fresh loopback connection, over TLS if `secure`
   */
  async function connected (secure = false): Promise<{ ours: net.Socket, peer: net.Socket }> {
    server = secure ? tls.createServer({ cert: certificate.cert, key: certificate.key }) : net.createServer()
    await new Promise<void>(resolve => server?.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as net.AddressInfo
    const accepted = pEvent<string, net.Socket>(server, secure ? 'secureConnection' : 'connection', { signal: AbortSignal.timeout(DEADLINE) })
    const peer = secure ? tls.connect({ host: '127.0.0.1', port, ca: [certificate.cert] }) : net.connect(port, '127.0.0.1')
    peer.on('error', () => {})
    const ours = await accepted
    sockets.push(ours, peer)

    return { ours, peer }
  }

  async function closed (socket: net.Socket): Promise<void> {
    if (!socket.closed) {
      await withDeadline(pEvent(socket, 'close'), DEADLINE, 'the socket closing')
    }
  }

  afterEach(async () => {
    sockets.splice(0).forEach(socket => socket.destroy())
    await withDeadline(new Promise(resolve => server?.close(resolve) ?? resolve(undefined)), DEADLINE, 'the server closing')
    server = undefined
  })

  it('ends a TCP connection with an RST', async () => {
    const { ours, peer } = await connected()
    const error = pEvent<'error', NodeJS.ErrnoException>(peer, 'error', { signal: AbortSignal.timeout(DEADLINE) })

    resetSocket(ours)

    expect(await error).to.have.property('code', 'ECONNRESET')
  })

  it('destroys a socket that has begun to end, which the kernel would not reset', async () => {
    const { ours } = await connected()
    ours.end()

    resetSocket(ours)

    expect(ours.destroyed).to.be.true()
    await closed(ours)
  })

  it('destroys a TLS socket, whose handle cannot be reset', async () => {
    const { ours, peer } = await connected(true)

    resetSocket(ours)

    expect(ours.destroyed).to.be.true()
    await closed(peer)
  })
})
