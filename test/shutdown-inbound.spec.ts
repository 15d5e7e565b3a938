import http from 'node:http'
import { expect } from 'aegir/chai'
import { createNode } from '../toolbox/node.ts'
import { closedByServer, halfHttpClient, halfLibp2pClient, halfTlsClient, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { certificate } from './fixtures/certificate.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { listenerOf, totalOf } from './fixtures/internals.ts'
import type { InboundPhase } from '../src/index.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type net from 'node:net'
import type { WebSocket } from 'ws'

const STOP_DEADLINE = 5_000

interface Stage {
  name: string
  secure: boolean
  phase: InboundPhase
  client(ma: Multiaddr): Promise<net.Socket | WebSocket>
}

const stages: Stage[] = [
  { name: 'a client connects and sends nothing', secure: false, phase: 'accepted', client: silentClient },
  { name: 'a client sends half an HTTP request', secure: false, phase: 'http', client: halfHttpClient },
  { name: 'a client starts a TLS handshake and stalls', secure: true, phase: 'tls', client: halfTlsClient },
  { name: 'a client completes the WebSocket upgrade and never starts libp2p', secure: false, phase: 'upgrading', client: upgradedClient },
  { name: 'a client stalls in the middle of the libp2p handshake', secure: false, phase: 'upgrading', client: halfLibp2pClient }
]

describe('inbound sockets are terminated by node.stop() in every phase', () => {
  let node: Libp2p | undefined

  afterEach(async () => {
    await node?.stop()
    node = undefined
  })

  stages.flatMap(stage => [1, 50].map(count => ({ stage, count }))).forEach(({ stage, count }) => {
    it(`${stage.name} (${count} at once)`, async () => {
      node = await createNode({
        listen: [stage.secure ? '/ip4/127.0.0.1/tcp/0/tls/ws' : '/ip4/127.0.0.1/tcp/0/ws'],
        init: { https: certificate },
        // libp2p refuses more than 10 pending upgrades, and 5 a second from one host, by default
        config: { connectionManager: { maxIncomingPendingConnections: 100, inboundConnectionThreshold: 100 } }
      })
      const listener = listenerOf(node)
      const ma = node.getMultiaddrs()[0]

      const clients = await withDeadline(Promise.all(
        Array.from({ length: count }, async () => stage.client(ma))
      ), 10_000, 'clients reaching their phase')

      await until(() => listener.socketCounts()[stage.phase] === count, 5_000, `${count} sockets in phase ${stage.phase}`)
      expect(totalOf(listener.socketCounts())).to.equal(count)

      await withDeadline(node.stop(), STOP_DEADLINE, 'node.stop()')

      expect(totalOf(listener.socketCounts())).to.equal(0)
      await withDeadline(Promise.all(clients.map(closedByServer)), 1_000, 'every client socket closing')
    })
  })
})

describe('inbound sockets do not depend on the HTTP servers closing them', () => {
  let node: Libp2p | undefined
  let dialer: Libp2p | undefined
  const closeAllConnections = http.Server.prototype.closeAllConnections

  afterEach(async () => {
    http.Server.prototype.closeAllConnections = closeAllConnections
    await Promise.all([node?.stop(), dialer?.stop()])
    node = dialer = undefined
  })

  it('terminates every phase at once with closeAllConnections() doing nothing', async () => {
    http.Server.prototype.closeAllConnections = function () {}

    node = await createNode({
      config: { connectionManager: { maxIncomingPendingConnections: 100, inboundConnectionThreshold: 100 } }
    })
    dialer = await createNode({ listen: [] })
    const listener = listenerOf(node)
    const ma = node.getMultiaddrs()[0]

    await dialer.dial(ma)
    const clients = await withDeadline(Promise.all([
      silentClient(ma),
      halfHttpClient(ma),
      upgradedClient(ma),
      halfLibp2pClient(ma)
    ]), 10_000, 'clients reaching their phase')

    await until(() => totalOf(listener.socketCounts()) === 5 && listener.socketCounts().http === 1, 5_000, 'five sockets tracked')
    expect(listener.socketCounts()).to.include({ accepted: 1, http: 1, upgrading: 2, open: 1 })

    await withDeadline(node.stop(), STOP_DEADLINE, 'node.stop()')

    expect(totalOf(listener.socketCounts())).to.equal(0)
    await withDeadline(Promise.all(clients.map(closedByServer)), 1_000, 'every client socket closing')
    await until(() => dialer?.getConnections().length === 0, 2_000, 'the dialer seeing its connection close')
  })
})
