import { randomBytes, X509Certificate } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { stop } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { pEvent } from 'p-event'
import { webSockets } from '../src/index.ts'
import { echoOnConnection, handleEcho } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { certificate, renewedCertificate } from './fixtures/certificate.ts'
import { until } from './fixtures/deadline.ts'
import { upgraderOf } from './fixtures/upgrader.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { Connection, Libp2p, Libp2pEvents, Listener, TLSCertificate } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Every wait in this file gives up after this long
 */
const DEADLINE = 10_000

function portOf (ma: Multiaddr): number {
  const port = ma.getComponents().find(component => component.name === 'tcp')?.value

  if (port == null) {
    throw new Error(`${ma} has no tcp port`)
  }

  return parseInt(port, 10)
}

/**
 * Both ends of a fresh loopback TCP connection
 */
async function socketPair (): Promise<{ client: net.Socket, accepted: net.Socket }> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const accepted = pEvent<'connection', net.Socket>(server, 'connection', { signal: AbortSignal.timeout(DEADLINE) })
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const pair = { client, accepted: await accepted }
  server.close()
  client.destroy()

  return pair
}

function fingerprintOf (pem: string): string {
  return new X509Certificate(pem).fingerprint256
}

describe('listener', function () {
  this.timeout(30_000)

  let events: TypedEventEmitter<Libp2pEvents>
  let listeners: Listener[]
  let nodes: Libp2p[]
  let sockets: net.Socket[]

  /**
   * The node whose upgrader our listeners use: connections they accept end up
   * as its connections
   */
  let server: Libp2p

  /**
   * A node that dials our listeners, trusting both test certificates
   */
  let client: Libp2p

  beforeEach(async () => {
    events = new TypedEventEmitter<Libp2pEvents>()
    listeners = []
    nodes = []
    sockets = []

    server = await createNode({ listen: [] })
    nodes.push(server)
    await handleEcho(server)
    client = await createNode({
      listen: [],
      init: {
        websocket: {
          ca: [certificate.cert, renewedCertificate.cert]
        }
      }
    })
    nodes.push(client)
  })

  afterEach(async () => {
    for (const socket of sockets) {
      socket.destroy()
    }

    await Promise.all(listeners.map(async listener => listener.close()))
    await stop(...nodes)
  })

  function createListener (init: WebSocketsInit = {}): Listener {
    const transport = webSockets(init)({
      logger: defaultLogger(),
      events
    })
    const listener = transport.createListener({
      upgrader: upgraderOf(server)
    })
    listeners.push(listener)

    return listener
  }

  /**
   * Dial the listener from the client node and check that the connection
   * reaches the server node
   */
  async function assertDialable (ma: Multiaddr): Promise<void> {
    const connection = await client.dial(ma, {
      signal: AbortSignal.timeout(DEADLINE)
    })

    expect(connection.remotePeer.equals(server.peerId)).to.be.true()
    expect(connection.remoteAddr.toString()).to.equal(ma.encapsulate(`/p2p/${server.peerId}`).toString())

    const input = new Uint8Array(randomBytes(64 * 1024))
    const output = await echoOnConnection(connection, input, {
      signal: AbortSignal.timeout(DEADLINE)
    })
    expect(output).to.equalBytes(input)

    await connection.close({
      signal: AbortSignal.timeout(DEADLINE)
    })
  }

  /**
   * Open a TLS connection to the port and return the fingerprint of the
   * certificate it presents
   */
  async function presentedFingerprint (port: number, host = '127.0.0.1'): Promise<string> {
    const socket = tls.connect({
      host,
      port,
      ca: [certificate.cert, renewedCertificate.cert]
    })
    sockets.push(socket)

    await pEvent(socket, 'secureConnect', {
      signal: AbortSignal.timeout(DEADLINE)
    })

    const fingerprint = socket.getPeerCertificate().fingerprint256
    socket.destroy()

    return fingerprint
  }

  function provision (type: 'certificate:provision' | 'certificate:renew', detail: TLSCertificate): void {
    events.dispatchEvent(new CustomEvent(type, { detail }))
  }

  /**
   * A listener on /ws that then gets a certificate the way libp2p's auto-tls
   * service provisions one
   */
  async function listenerWithProvisionedCertificate (): Promise<{ listener: Listener, port: number }> {
    const listener = createListener()
    await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
    const port = portOf(listener.getAddrs()[0])

    const listening = pEvent(listener, 'listening', {
      signal: AbortSignal.timeout(DEADLINE)
    })
    provision('certificate:provision', certificate)
    await listening

    return { listener, port }
  }

  describe('addresses', () => {
    it('has no addresses before listening', () => {
      const listener = createListener()

      expect(listener.getAddrs()).to.be.empty()
    })

    it('listens on an ip4 address and gets a real port', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      const addrs = listener.getAddrs()
      expect(addrs).to.have.lengthOf(1)
      expect(WebSockets.exactMatch(addrs[0])).to.be.true()
      expect(addrs[0].toString()).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws$/)
      expect(portOf(addrs[0])).to.be.greaterThan(0)

      await assertDialable(addrs[0])
    })

    it('listens on an ip6 address and gets a real port', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip6/::1/tcp/0/ws'))

      const addrs = listener.getAddrs()
      expect(addrs).to.have.lengthOf(1)
      expect(addrs[0].toString()).to.match(/^\/ip6\/::1\/tcp\/\d+\/ws$/)
      expect(portOf(addrs[0])).to.be.greaterThan(0)

      await assertDialable(addrs[0])
    })

    it('listens on a secure address and gets a real port', async () => {
      const listener = createListener({
        https: {
          cert: certificate.cert,
          key: certificate.key
        }
      })
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/tls/ws'))

      const addrs = listener.getAddrs()
      expect(addrs).to.have.lengthOf(1)
      expect(WebSocketsSecure.exactMatch(addrs[0])).to.be.true()
      expect(addrs[0].toString()).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/tls\/ws$/)
      expect(portOf(addrs[0])).to.be.greaterThan(0)
      expect(await presentedFingerprint(portOf(addrs[0]))).to.equal(fingerprintOf(certificate.cert))

      await assertDialable(addrs[0])
    })

    it('listens on a given port', async () => {
      const first = createListener()
      await first.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const port = portOf(first.getAddrs()[0])
      await first.close()

      const listener = createListener()
      await listener.listen(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`))

      expect(listener.getAddrs().map(ma => ma.toString())).to.deep.equal([
        `/ip4/127.0.0.1/tcp/${port}/ws`
      ])
    })

    it('expands a wildcard address to the addresses of the interfaces', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/0.0.0.0/tcp/0/ws'))

      const addrs = listener.getAddrs()
      const port = portOf(addrs[0])

      expect(port).to.be.greaterThan(0)
      expect(addrs.map(ma => ma.toString())).to.include(`/ip4/127.0.0.1/tcp/${port}/ws`)

      for (const ma of addrs) {
        expect(ma.toString()).to.match(/^\/ip4\/[\d.]+\/tcp\/\d+\/ws$/)
        expect(ma.toString()).to.not.include('0.0.0.0')
        expect(portOf(ma)).to.equal(port)
      }
    })

    it('refuses an address it cannot bind, and listens on the next one', async () => {
      const listener = createListener()

      await expect(listener.listen(multiaddr('/unix/%2Ftmp%2Fcleanstop.sock/ws'))).to.eventually.be.rejected()
        .with.property('name', 'InvalidParametersError')

      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      expect(listener.getAddrs()).to.have.lengthOf(1)
    })

    it('leaves on its server no listener of its listen(), whether that bound or failed', async () => {
      const first = createListener()
      await first.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const second = createListener()
      await expect(second.listen(first.getAddrs()[0])).to.eventually.be.rejected()
      await second.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      for (const listener of [first, second]) {
        const { server } = listener as unknown as { server: net.Server }
        expect(server.listenerCount('listening')).to.equal(0)
        // the listener's own: counted as a server error
        expect(server.listenerCount('error')).to.equal(1)
      }
    })

    it('moves a TLS socket on to the HTTP phase once its handshake is done', async () => {
      const { listener, port } = await listenerWithProvisionedCertificate()
      const socket = tls.connect({ host: '127.0.0.1', port, ca: [certificate.cert] })
      sockets.push(socket)
      await pEvent(socket, 'secureConnect', { signal: AbortSignal.timeout(DEADLINE) })

      const counts = (): Record<string, number> => (listener as unknown as { socketCounts(): Record<string, number> }).socketCounts()
      await until(() => counts().http === 1, DEADLINE, 'the socket reaching the HTTP phase')
      expect(counts().tls).to.equal(0)
    })

    it('binds an IPv6 address for IPv6 only and an IPv4 one as it is, as @libp2p/tcp does', async () => {
      const listen = net.Server.prototype.listen
      const options: net.ListenOptions[] = []
      net.Server.prototype.listen = function (this: net.Server, ...args: any[]) {
        options.push(args[0])
        return listen.apply(this, args as any)
      } as typeof listen

      try {
        await createListener().listen(multiaddr('/ip6/::1/tcp/0/ws'))
        await createListener().listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      } finally {
        net.Server.prototype.listen = listen
      }

      expect(options.map(option => option.ipv6Only)).to.deep.equal([true, false])
    })

    it('has no addresses once closed', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      expect(listener.getAddrs()).to.have.lengthOf(1)

      await listener.close()

      expect(listener.getAddrs()).to.be.empty()
    })

    it('rejects listening on a port in use', async () => {
      const first = createListener()
      await first.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const port = portOf(first.getAddrs()[0])

      const second = createListener()

      await expect(second.listen(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`)))
        .to.eventually.be.rejected()
        .with.property('code', 'EADDRINUSE')

      expect(second.getAddrs()).to.be.empty()

      // the listener that holds the port is unaffected
      await assertDialable(first.getAddrs()[0])
    })
  })

  describe('events', () => {
    it('emits listening once listening', async () => {
      const listener = createListener()
      const listening = pEvent(listener, 'listening', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      await listening

      expect(listener.getAddrs()).to.have.lengthOf(1)
    })

    it('emits close once closed', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const port = portOf(listener.getAddrs()[0])

      const closed = pEvent(listener, 'close', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      await listener.close()
      await closed

      // the port is free again
      const socket = net.connect({ host: '127.0.0.1', port })
      sockets.push(socket)

      await expect(pEvent(socket, 'connect', {
        signal: AbortSignal.timeout(DEADLINE)
      })).to.eventually.be.rejected()
        .with.property('code', 'ECONNREFUSED')
    })
  })

  describe('before listening and once closed', () => {
    it('destroys a socket handed to it while it does not listen', async () => {
      const { accepted } = await socketPair()
      const listener = createListener() as unknown as { onSocketConnection(socket: net.Socket): void }

      listener.onSocketConnection(accepted)

      expect(accepted.destroyed).to.be.true()
    })

    it('terminates a WebSocket whose upgrade completed once it was closing', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      await listener.close()
      let terminated = 0
      const websocket = { terminate: () => { terminated++ } }
      const internals = listener as unknown as { onWsServerConnection(...args: unknown[]): void }

      internals.onWsServerConnection(websocket, {}, {}, { host: '127.0.0.1', port: 1 })

      expect(terminated).to.equal(1)
    })
  })

  describe('inbound connections', () => {
    /**
     * Dial the address from the client and return the connection the server
     * node sees
     */
    async function inboundConnection (ma: Multiaddr): Promise<Connection> {
      const opened = pEvent<'connection:open', CustomEvent<Connection>>(server, 'connection:open', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      await client.dial(ma, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      const { detail: connection } = await opened
      expect(connection.direction).to.equal('inbound')
      expect(connection.remotePeer.equals(client.peerId)).to.be.true()

      return connection
    }

    it('gives a connection over /ws a /ws remote address', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      const connection = await inboundConnection(listener.getAddrs()[0])

      expect(connection.remoteAddr.toString()).to.match(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/ws/p2p/${client.peerId}$`))
      expect(WebSockets.exactMatch(connection.remoteAddr)).to.be.true()
    })

    it('gives a connection over /tls/ws a /tls/ws remote address', async () => {
      const listener = createListener({
        https: {
          cert: certificate.cert,
          key: certificate.key
        }
      })
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/tls/ws'))

      const connection = await inboundConnection(listener.getAddrs()[0])

      expect(connection.remoteAddr.toString()).to.match(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/tls/ws/p2p/${client.peerId}$`))
      expect(WebSocketsSecure.exactMatch(connection.remoteAddr)).to.be.true()
    })

    it('keeps no spent handshake timer for an open connection, whose record lives as long as it does', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      await inboundConnection(listener.getAddrs()[0])

      // what the listener keeps per socket (white box: an idle connection's
      // memory is the figure this guards)
      const records: Array<Record<string, unknown>> = (listener as any).sockets.sockets.allData()
      expect(records).to.have.lengthOf(1)
      expect(records[0]).to.have.property('connection')
      expect(records[0].deadline).to.be.undefined()
    })

    it('labels each connection on a port serving both by how it arrived', async () => {
      const { port } = await listenerWithProvisionedCertificate()

      const secure = await inboundConnection(multiaddr(`/ip4/127.0.0.1/tcp/${port}/tls/ws`))
      expect(WebSocketsSecure.exactMatch(secure.remoteAddr)).to.be.true()

      await secure.close({
        signal: AbortSignal.timeout(DEADLINE)
      })

      const insecure = await inboundConnection(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`))
      expect(WebSockets.exactMatch(insecure.remoteAddr)).to.be.true()
    })
  })

  describe('plain HTTP', () => {
    it('answers a request that is not a WebSocket upgrade with 400 and a body', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const port = portOf(listener.getAddrs()[0])

      const req = http.get({
        host: '127.0.0.1',
        port,
        path: '/',
        agent: false,
        signal: AbortSignal.timeout(DEADLINE)
      })
      const res = await pEvent<'response', http.IncomingMessage>(req, 'response', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })

      await pEvent(res, 'end', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(res.statusCode).to.equal(400)
      expect(res.headers['content-type']).to.equal('text/plain')
      expect(body).to.not.be.empty()
    })

    it('closes the socket after answering a plain HTTP request', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))
      const port = portOf(listener.getAddrs()[0])

      const socket = net.connect({ host: '127.0.0.1', port })
      sockets.push(socket)
      await pEvent(socket, 'connect', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      let response = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        response += chunk
      })

      // HTTP/1.1 keeps the connection open unless told otherwise: only the
      // server can end this socket, and it must do so on its answer, well
      // before Node.js's keep-alive timeout (5 s) would
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n')

      await pEvent(socket, 'end', {
        signal: AbortSignal.timeout(2_000)
      })

      const [head, body] = response.split('\r\n\r\n')
      expect(head).to.match(/^HTTP\/1\.1 400 /)
      expect(head).to.match(/\r\nConnection: close(\r\n|$)/i)
      expect(body).to.not.be.empty()
    })
  })

  describe('auto-tls', () => {
    it('adds a secure address on the same port when a certificate is provisioned', async () => {
      const listener = createListener()
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/ws'))

      const [insecure] = listener.getAddrs()
      const port = portOf(insecure)

      const listening = pEvent(listener, 'listening', {
        signal: AbortSignal.timeout(DEADLINE)
      })

      provision('certificate:provision', certificate)
      await listening

      expect(listener.getAddrs().map(ma => ma.toString())).to.have.members([
        `/ip4/127.0.0.1/tcp/${port}/ws`,
        `/ip4/127.0.0.1/tcp/${port}/tls/ws`
      ])

      const secure = listener.getAddrs().find(ma => WebSocketsSecure.exactMatch(ma))

      if (secure == null) {
        throw new Error('No secure address')
      }

      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(certificate.cert))

      // both kinds of dial work on the one port
      await assertDialable(secure)
      await assertDialable(insecure)
    })

    it('keeps its certificate when another is provisioned while it serves HTTPS', async () => {
      const { listener, port } = await listenerWithProvisionedCertificate()
      let listening = 0
      listener.addEventListener('listening', () => { listening++ })

      provision('certificate:provision', renewedCertificate)

      expect(listening).to.equal(0)
      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(certificate.cert))
    })

    it('serves a renewed certificate to new connections', async () => {
      const { listener, port } = await listenerWithProvisionedCertificate()

      const secure = multiaddr(`/ip4/127.0.0.1/tcp/${port}/tls/ws`)
      const before = await client.dial(secure, {
        signal: AbortSignal.timeout(DEADLINE)
      })

      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(certificate.cert))

      provision('certificate:renew', renewedCertificate)

      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(renewedCertificate.cert))
      expect(listener.getAddrs().map(ma => ma.toString())).to.have.members([
        `/ip4/127.0.0.1/tcp/${port}/ws`,
        `/ip4/127.0.0.1/tcp/${port}/tls/ws`
      ])

      // a client that only trusts the renewed certificate can dial
      const renewedOnly = await createNode({
        listen: [],
        init: {
          websocket: {
            ca: renewedCertificate.cert
          }
        }
      })
      nodes.push(renewedOnly)

      const after = await renewedOnly.dial(secure, {
        signal: AbortSignal.timeout(DEADLINE)
      })
      expect(after.remotePeer.equals(server.peerId)).to.be.true()

      // a connection made with the old certificate lives on
      expect(before.status).to.equal('open')
      const input = new Uint8Array(randomBytes(64 * 1024))
      const output = await echoOnConnection(before, input, {
        signal: AbortSignal.timeout(DEADLINE)
      })
      expect(output).to.equalBytes(input)
    })

    it('renews the certificate of a listener configured with one', async () => {
      const listener = createListener({
        https: {
          cert: certificate.cert,
          key: certificate.key
        }
      })
      await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0/tls/ws'))
      const [secure] = listener.getAddrs()
      const port = portOf(secure)

      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(certificate.cert))

      provision('certificate:renew', renewedCertificate)

      expect(await presentedFingerprint(port)).to.equal(fingerprintOf(renewedCertificate.cert))
      await assertDialable(secure)
    })
  })
})
