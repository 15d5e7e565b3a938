import { randomBytes } from 'node:crypto'
import { stop } from '@libp2p/interface'
import { expect } from 'aegir/chai'
import { echoOnConnection } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { rawClient } from '../toolbox/raw-client.ts'
import { upgradeRequest } from '../toolbox/raw-websocket.ts'
import { closedByServer, halfHttpClient, halfLibp2pClient, halfTlsClient, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { totalOf, transportOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { listeningNode } from './fixtures/nodes.ts'
import { prng } from './fixtures/prng.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import type { Connection, Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type net from 'node:net'
import type { WebSocket } from 'ws'

const DIALERS = 8
const CONNECTIONS_PER_DIALER = 8

/**
 * Of each kind of stalled client
 */
const STALLED_PER_KIND = 40
const GARBAGE = 160

const HANDSHAKE_TIMEOUT = 1_000
const INBOUND_UPGRADE_TIMEOUT = 3_000

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 15_000

const stalledKinds: Record<string, (ma: Multiaddr) => Promise<net.Socket | WebSocket>> = {
  silent: silentClient,
  'half an HTTP request': halfHttpClient,
  'half a TLS ClientHello': halfTlsClient,
  'upgraded, no libp2p': upgradedClient,
  'half a libp2p handshake': halfLibp2pClient
}

/**
 * A client that sends something wrong, which the listener answers or destroys
 * at once or at its handshake deadline
 */
async function garbageClient (ma: Multiaddr, index: number): Promise<net.Socket> {
  const rng = prng(index)
  const client = await rawClient(ma)

  switch (index % 4) {
    case 0:
      client.write(rng.bytes(1 + rng.int(1_000)))
      break
    case 1:
      client.write(upgradeRequest({ 'Sec-WebSocket-Key': undefined }))
      break
    case 2:
      client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      break
    default:
      client.write(`GET / HTTP/1.1\r\nHost 127.0.0.1\r\n${'x'.repeat(rng.int(100))}\r\n\r\n`)
  }

  return client.socket
}

describe('the listener under load', function () {
  this.timeout(60_000)

  let nodes: Libp2p[]
  let clients: Array<net.Socket | WebSocket>

  beforeEach(() => {
    nodes = []
    clients = []
  })

  afterEach(async () => {
    for (const client of clients) {
      if ('terminate' in client) {
        client.terminate()
      } else {
        client.destroy()
      }
    }

    await withDeadline(stop(...nodes), DEADLINE, 'stopping the nodes')
  })

  failOnProcessErrors()

  it(`upgrades every real peer among ${DIALERS * CONNECTIONS_PER_DIALER + STALLED_PER_KIND * Object.keys(stalledKinds).length + GARBAGE} concurrent connection attempts, cleans up every bad one and leaks nothing`, async () => {
    const start = Date.now()
    const { node, listener, metrics, ma } = await listeningNode(nodes, { handshakeTimeout: HANDSHAKE_TIMEOUT }, false, {
      maxConnections: 1_000,
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 100_000,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT
    })

    const dialers = await Promise.all(Array.from({ length: DIALERS }, async () => createNode({ listen: [] })))
    nodes.push(...dialers)

    // everything at once: the real peers' dials (one at a time per dialer,
    // since libp2p joins concurrent dials to one peer), the stalled clients
    // and the garbage
    const real = Promise.all(dialers.map(async dialer => {
      const connections: Connection[] = []

      for (let i = 0; i < CONNECTIONS_PER_DIALER; i++) {
        connections.push(await dialer.dial(ma, { force: true, signal: AbortSignal.timeout(DEADLINE) }))
      }

      return connections
    }))

    const stalled = Promise.all(Object.values(stalledKinds).flatMap(client =>
      Array.from({ length: STALLED_PER_KIND }, async () => {
        const socket = await client(ma)
        clients.push(socket)

        return socket
      })
    ))

    const garbage = Promise.all(Array.from({ length: GARBAGE }, async (_, index) => {
      const socket = await garbageClient(ma, index)
      clients.push(socket)

      return socket
    }))

    const [connections, stalledClients, garbageClients] = await withDeadline(Promise.all([real, stalled, garbage]), DEADLINE, 'every client connecting')
    const realConnections = connections.flat()

    // every real peer upgraded and exchanges data
    expect(realConnections).to.have.lengthOf(DIALERS * CONNECTIONS_PER_DIALER)
    expect(new Set(realConnections.map(connection => connection.id)).size).to.equal(DIALERS * CONNECTIONS_PER_DIALER)
    await withDeadline(Promise.all(realConnections.map(async connection => {
      const input = new Uint8Array(randomBytes(16 * 1024))
      const output = await echoOnConnection(connection, input, { signal: AbortSignal.timeout(DEADLINE) })
      expect(output).to.equalBytes(input)
    })), DEADLINE, 'every real connection exchanging data')

    // every bad client is cleaned up by the server
    await withDeadline(Promise.all([...stalledClients, ...garbageClients].map(closedByServer)), HANDSHAKE_TIMEOUT + INBOUND_UPGRADE_TIMEOUT + DEADLINE, 'every bad client being closed by the server')
    await until(() => totalOf(listener.socketCounts()) === realConnections.length, DEADLINE, 'the listener releasing every bad socket')
    expect(listener.socketCounts()).to.deep.include({ open: realConnections.length })
    expect(realConnections.filter(connection => connection.status !== 'open')).to.be.empty()
    expect(node.getConnections()).to.have.lengthOf(realConnections.length)

    // the silent and half HTTP clients met the handshake deadline, the TLS
    // ones were refused by a listener that only serves plain WebSockets
    expect(listenerEventCount(metrics, 'handshake_timeout')).to.be.at.least(STALLED_PER_KIND * 2)
    expect(listenerEventCount(metrics, 'unexpected_tls')).to.be.at.least(STALLED_PER_KIND)

    // the real peers leave: nothing is left on either side
    await withDeadline(stop(...dialers), DEADLINE, 'stopping the dialers')

    for (const dialer of dialers) {
      expect(totalOf(transportOf(dialer).socketCounts())).to.equal(0)
    }

    await until(() => totalOf(listener.socketCounts()) === 0, DEADLINE, 'the listener releasing every socket')
    await until(() => node.getConnections().length === 0, DEADLINE, 'the listener dropping every connection')

    expect(Date.now() - start).to.be.below(30_000)
  })
})
