import http from 'node:http'
import https from 'node:https'
import { stop } from '@libp2p/interface'
import { getNetConfig } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { WebSocket } from 'ws'
import { echo } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { rawClient } from '../toolbox/raw-client.ts'
import { upgradeRequest } from '../toolbox/raw-websocket.ts'
import { bareListener, LOOPBACK_WS } from './fixtures/bare-listener.ts'
import { certificate } from './fixtures/certificate.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { listenerOf, totalOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { AddressInfo, Socket } from 'node:net'

interface Response {
  status: number
  body: string
  socketClosed: Promise<void>
}

/**
 * A GET on a keep-alive agent, so the connection outlives the response
 */
async function get (port: number, agent: http.Agent, path = '/'): Promise<Response> {
  return withDeadline(new Promise<Response>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, res => {
      const socketClosed = new Promise<void>(resolve => res.socket.once('close', () => { resolve() }))
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body, socketClosed }) })
    })
    req.on('error', reject)
  }), 5_000, `GET ${path}`)
}

function portOf (ma: Multiaddr): number {
  return getNetConfig(ma).port ?? 0
}

describe('one port for libp2p and HTTP', function () {
  this.timeout(30_000)

  let nodes: Libp2p[]
  let agents: http.Agent[]
  let servers: http.Server[]

  beforeEach(() => {
    nodes = []
    agents = []
    servers = []
  })

  afterEach(async () => {
    agents.forEach(agent => { agent.destroy() })
    await withDeadline(stop(...nodes), 10_000, 'stopping the nodes')
    servers.forEach(server => { server.closeAllConnections() })
    await Promise.all(servers.map(async server => new Promise(resolve => server.close(resolve))))
  })

  failOnProcessErrors()

  function keepAliveAgent (): http.Agent {
    const agent = new http.Agent({ keepAlive: true })
    agents.push(agent)

    return agent
  }

  describe('the request handler', () => {
    it('serves plain HTTP requests on the listener\'s port, over keep-alive, beside libp2p', async () => {
      const { node, listener, ma, metrics } = await listeningNode(nodes, {
        requestHandler: (req, res) => { res.end(`hello ${req.url}`) }
      })
      const agent = keepAliveAgent()

      const first = await get(portOf(ma), agent, '/health')
      const second = await get(portOf(ma), agent, '/again')
      expect(first).to.include({ status: 200, body: 'hello /health' })
      expect(second).to.include({ status: 200, body: 'hello /again' })
      expect(listener.socketCounts()).to.deep.include({ request: 1, http: 0 })
      expect(listenerEventCount(metrics, 'http_request')).to.equal(2)

      // a libp2p peer on the same port
      const dialer = await dialerNode(nodes)
      const input = new Uint8Array(1024).fill(7)
      expect(await echo(dialer, ma, input, { signal: AbortSignal.timeout(10_000) })).to.equalBytes(input)

      // the kept-alive HTTP connection is ours: the node's stop ends it
      await withDeadline(node.stop(), 5_000, 'stopping the node')
      await withDeadline(first.socketClosed, 5_000, 'the HTTP connection being terminated')
      expect(totalOf(listener.socketCounts())).to.equal(0)
    })

    it('serves HTTPS requests on a /tls/ws listener', async () => {
      const { ma } = await listeningNode(nodes, {
        requestHandler: (req, res) => { res.end('secure hello') }
      }, true)

      const body = await withDeadline(new Promise<string>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: portOf(ma), ca: certificate.cert, servername: 'localhost', checkServerIdentity: () => undefined }, res => {
          let body = ''
          res.on('data', chunk => { body += chunk })
          res.on('end', () => { resolve(body) })
        }).on('error', reject)
      }), 5_000, 'the HTTPS GET')

      expect(body).to.equal('secure hello')
    })

    it('closes an idle HTTP connection after inboundSocketInactivityTimeout', async () => {
      const { listener, ma, metrics } = await listeningNode(nodes, {
        requestHandler: (req, res) => { res.end('hi') },
        inboundSocketInactivityTimeout: 200,
        // the HTTP server's own keep-alive timeout must not be what closes it
        http: { keepAliveTimeout: 60_000 }
      })

      const response = await get(portOf(ma), keepAliveAgent())
      await withDeadline(response.socketClosed, 5_000, 'the idle connection being closed')
      expect(listenerEventCount(metrics, 'request_idle')).to.equal(1)
      await until(() => totalOf(listener.socketCounts()) === 0, 5_000, 'the listener letting go')
    })

    it('ends a kept-alive connection that became a WebSocket by its inactivity as a connection, not as idle HTTP', async () => {
      const { listener, ma, metrics } = await listeningNode(nodes, {
        requestHandler: (req, res) => { res.end('hi') },
        // both the served connection's idle time and the libp2p connection's
        inboundSocketInactivityTimeout: 200,
        http: { keepAliveTimeout: 60_000 }
      })
      const client = await rawClient(ma)
      client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      await client.waitFor(c => c.received.includes('hi'), 5_000, 'the response')

      client.write(upgradeRequest())
      await client.waitFor(c => c.received.includes('101 Switching Protocols'), 5_000, 'the upgrade')
      await until(() => listener.socketCounts().upgrading === 1, 5_000, 'the WebSocket reaching libp2p')

      // the served connection's idle timer, started at the response and so
      // due first, must have stopped at the upgrade
      await client.waitFor(c => c.closed, 5_000, 'the silent connection timing out')
      expect(listenerEventCount(metrics, 'request_idle')).to.equal(0)
    })

    it('does not count connections being served as handshakes', async () => {
      const { listener, ma } = await listeningNode(nodes, {
        requestHandler: (req, res) => { res.end('hi') },
        maxInboundHandshakes: 1,
        handshakeTimeout: 300
      })
      const agent = keepAliveAgent()
      const response = await get(portOf(ma), agent)

      // longer than the handshake deadline, and the next peer is not refused
      const dialer = await dialerNode(nodes)
      await dialer.dial(ma, { signal: AbortSignal.timeout(10_000) })
      await new Promise(resolve => setTimeout(resolve, 500))
      expect(listener.socketCounts()).to.deep.include({ request: 1 })
      expect((await get(portOf(ma), agent)).status).to.equal(200)
      expect(response.status).to.equal(200)
    })

    it('a handler that throws has that request\'s connection destroyed, nothing else', async () => {
      const { listener, ma } = await listeningNode(nodes, {
        requestHandler: () => { throw new Error('the app broke') }
      })

      await expect(get(portOf(ma), keepAliveAgent())).to.eventually.be.rejected()
      await until(() => totalOf(listener.socketCounts()) === 0, 5_000, 'the listener letting go')
    })
  })

  describe('attached to the user\'s server', () => {
    async function userServer (): Promise<{ server: http.Server, port: number }> {
      const server = http.createServer((req, res) => { res.end(`app ${req.url}`) })
      servers.push(server)
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))

      return { server, port: (server.address() as AddressInfo).port }
    }

    it('takes the WebSocket upgrades, reports the server\'s address, and on stop leaves the server and its connections alone', async () => {
      const { server, port } = await userServer()
      const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0/ws'], init: { server } })
      nodes.push(node)
      const listener = listenerOf(node)
      const requestSockets: Socket[] = []
      server.on('request', req => { requestSockets.push(req.socket) })

      expect(node.getMultiaddrs().map(ma => portOf(ma))).to.deep.equal([port])

      const agent = keepAliveAgent()
      const before = await get(port, agent, '/before')
      expect(before.body).to.equal('app /before')

      const dialer = await dialerNode(nodes)
      const connection = await dialer.dial(node.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
      await until(() => listener.socketCounts().open === 1, 5_000, 'the connection being open')

      await withDeadline(node.stop(), 5_000, 'stopping the node')
      await until(() => connection.status !== 'open', 5_000, 'the dialer seeing the connection end')
      expect(totalOf(listener.socketCounts())).to.equal(0)
      expect(server.listening).to.be.true()
      expect(server.listenerCount('upgrade')).to.equal(0)
      expect(listener.getAddrs()).to.be.empty()

      // the user's kept-alive connection lives on, and serves again
      expect(requestSockets[0].destroyed).to.be.false()
      const after = await get(port, agent, '/after')
      expect(after.body).to.equal('app /after')
      expect(requestSockets[1]).to.equal(requestSockets[0])
    })

    it('takes the upgrades of an https.Server as /tls/ws', async () => {
      const server = https.createServer(certificate, (req, res) => { res.end('secure app') })
      servers.push(server)
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0/tls/ws'], init: { server } })
      nodes.push(node)

      const ma = node.getMultiaddrs()[0]
      expect(ma.toString()).to.include(`/tcp/${(server.address() as AddressInfo).port}/tls/ws/p2p/`)

      const dialer = await dialerNode(nodes)
      await dialer.dial(ma, { signal: AbortSignal.timeout(10_000) })
      await until(() => node.getConnections(dialer.peerId).length > 0, 5_000, 'the inbound connection')
      expect(node.getConnections(dialer.peerId)[0].remoteAddr.toString()).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/tls\/ws\//)
    })

    it('with upgradePath, leaves the other upgrade requests to the server\'s other listeners', async () => {
      const { server, port } = await userServer()
      const node = await createNode({ listen: ['/ip4/127.0.0.1/tcp/0/ws'], init: { server, upgradePath: '/' } })
      nodes.push(node)
      // the app's handler comes after ours: ours must leave the request alone,
      // not race the app to it
      server.on('upgrade', (req, socket) => {
        if (req.url === '/app-socket') {
          socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\n\r\n')
        }
      })

      const status = await withDeadline(new Promise<number>(resolve => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/app-socket`)
        ws.on('unexpected-response', (req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
        ws.on('error', () => {})
      }), 5_000, 'the app\'s upgrade answer')
      expect(status).to.equal(418)
      expect(totalOf(listenerOf(node).socketCounts())).to.equal(0)

      const dialer = await dialerNode(nodes)
      await dialer.dial(node.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
    })

    it('refuses a server that does not listen, and a second listener on the same server', async () => {
      const idle = bareListener({ server: http.createServer() })
      await expect(idle.listener.listen(LOOPBACK_WS)).to.eventually.be.rejectedWith(/must listen/)

      const { server } = await userServer()
      const first = bareListener({ server })
      const second = bareListener({ server })
      await first.listener.listen(LOOPBACK_WS)
      await expect(second.listener.listen(LOOPBACK_WS)).to.eventually.be.rejectedWith(/Another listener/)
      await expect(bareListener({ server }).listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/tls/ws'))).to.eventually.be.rejectedWith(/serves \/ws/)
      expect(server.listenerCount('upgrade')).to.equal(1)

      await first.listener.close()
      await second.listener.close()
      expect(server.listenerCount('upgrade')).to.equal(0)
      expect(server.listening).to.be.true()

      // once the first has let go of it, the server may be attached again
      const third = bareListener({ server })
      await third.listener.listen(LOOPBACK_WS)
      await third.listener.close()
    })
  })
})
