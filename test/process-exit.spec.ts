import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { startNodeProcess } from './fixtures/node-process-handle.ts'
import { silentServer } from './fixtures/silent-server.ts'
import { silentClient } from './fixtures/stalled-clients.ts'
import type { NodeProcess } from './fixtures/node-process-handle.ts'
import type { SilentServer } from './fixtures/silent-server.ts'

// libp2p itself keeps about a second of timers after stop(); a node using
// @libp2p/tcp exits within that, upstream WebSockets not for minutes
const STOP_DEADLINE = 5_000
const EXIT_DEADLINE = 8_000

describe('the process exits by itself after node.stop()', function () {
  this.timeout(60_000)

  const processes: NodeProcess[] = []
  let server: SilentServer | undefined

  const start = async (kind: 'websockets' | 'tcp' = 'websockets'): Promise<NodeProcess> => {
    const node = await startNodeProcess(kind)
    processes.push(node)
    return node
  }

  const stopAndExit = async (node: NodeProcess): Promise<void> => {
    const stopMs = await node.stop()
    expect(stopMs).to.be.lessThan(STOP_DEADLINE)
    await node.exited(EXIT_DEADLINE)
  }

  afterEach(async () => {
    processes.splice(0).forEach(node => { node.kill() })
    await server?.close()
    server = undefined
  })

  it('with no connection', async () => {
    await stopAndExit(await start())
  })

  it('the same with @libp2p/tcp, for reference', async () => {
    await stopAndExit(await start('tcp'))
  })

  it('with an inbound client that connected and sent nothing', async () => {
    const node = await start()
    const client = await silentClient(multiaddr(node.addrs[0]))

    await stopAndExit(node)
    client.destroy()
  })

  it('with established connections both ways and open streams', async () => {
    const node = await start()
    const peer = await start()

    await node.command({ type: 'open-stream', addr: peer.addrs[0] })
    await peer.command({ type: 'open-stream', addr: node.addrs[0] })

    await stopAndExit(node)
  })

  it('with an inbound peer that stopped responding', async () => {
    const node = await start()
    const peer = await start()

    await peer.command({ type: 'open-stream', addr: node.addrs[0] })
    peer.freeze()

    await stopAndExit(node)
  })

  it('with an outbound peer that stopped responding', async () => {
    const node = await start()
    const peer = await start()

    await node.command({ type: 'open-stream', addr: peer.addrs[0] })
    peer.freeze()

    await stopAndExit(node)
  })

  it('while dialing a server that accepts TCP and never answers', async () => {
    server = await silentServer()
    const node = await start()

    await node.command({ type: 'dial', addr: `${server.multiaddr.toString()}/ws` })
    await server.connected()

    await stopAndExit(node)
    await server.allClosed(1_000)
  })
})
