import { InvalidParametersError } from '@libp2p/interface'
import { WebSocketServer } from 'ws'
import { TrustedProxies } from './client-address.ts'
import { CLOSE_TIMEOUT, HANDSHAKE_PHASES, HANDSHAKE_TIMEOUT, INBOUND_PHASES, MAX_PAYLOAD } from './constants.ts'
import { ProxyHeaderError, ProxyHeaderReader, startsWithProxySignature } from './proxy-protocol.ts'
import { SocketRegistry } from './socket-registry.ts'
import type { ClientAddress } from './client-address.ts'
import type { CounterGroup, Logger, Metrics } from '@libp2p/interface'
import type { EventEmitter } from 'node:events'
import type http from 'node:http'
import type net from 'node:net'
import type { Duplex } from 'node:stream'
import type tls from 'node:tls'
import type { ServerOptions, WebSocket } from 'ws'

/**
 * Where an inbound socket is between accept and a libp2p connection
 */
export type InboundPhase = typeof INBOUND_PHASES[number]

const handshakePhases: ReadonlySet<InboundPhase> = new Set(HANDSHAKE_PHASES)

/**
 * What the owner keeps per socket
 */
interface InboundRecord {
  /**
   * Ends the handshake: cleared once the socket leaves the handshake phases
   */
  deadline?: ReturnType<typeof setTimeout>

  /**
   * The client a trusted proxy's PROXY header named
   */
  proxied?: ClientAddress

  /**
   * Set while a trusted proxy's PROXY header is awaited
   */
  awaitingProxyHeader?: boolean

  /**
   * Requests of a plain HTTP connection the user's handler is serving now
   */
  requests?: number

  /**
   * Destroys a plain HTTP connection the user's handler serves once it has
   * been idle, between responses, for `requestIdleTimeout`
   */
  idle?: ReturnType<typeof setTimeout>
}

/**
 * What the inbound sockets need of their listener, handed over rather than
 * reached for
 */
export interface InboundSocketsInit {
  log: Logger
  metrics?: Metrics

  /**
   * How long in ms a socket may take from accept to a completed WebSocket
   * upgrade
   *
   * @default 10_000
   */
  handshakeTimeout?: number

  /**
   * Refuse a socket while this many have not completed the upgrade
   *
   * @default Infinity
   */
  maxInboundHandshakes?: number

  /**
   * Largest incoming WebSocket message in bytes
   *
   * @default 1_048_576
   */
  maxPayload?: number

  /**
   * How long in ms `ws` waits for the peer to answer a close frame it sent
   *
   * @default 2_000
   */
  closeTimeout?: number

  /**
   * Proxies whose PROXY headers and forwarding headers name the client
   *
   * @default []
   */
  trustedProxies?: string[]

  /**
   * Read a PROXY header (v1 or v2) from every socket a trusted proxy opens,
   * before anything else; without one the socket is destroyed
   *
   * @default false
   */
  proxyProtocol?: boolean

  /**
   * How long in ms a plain HTTP connection served by the user's request
   * handler may stay without traffic, 0 for no limit of ours
   *
   * @default 0
   */
  requestIdleTimeout?: number

  /**
   * The listener's address, which labels its metrics
   */
  address(): string | undefined

  /**
   * Count an event in the listener's metrics
   */
  countEvent(event: string): void

  /**
   * The server for sockets whose first byte starts a TLS handshake or an
   * HTTP request, if the listener serves that now
   */
  serverFor(protocol: 'tls' | 'http'): EventEmitter | undefined

  /**
   * Take a WebSocket whose upgrade is complete, over `raw`, the socket we
   * accepted
   */
  onWebSocket(websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket, client: ClientAddress): void
}

/**
 * The owner of a listener's sockets, from the moment the net server accepts
 * one until it is destroyed: it admits them, routes each by its first byte,
 * follows them through the HTTP(S) servers and `ws` up to an open WebSocket,
 * and terminates them all on close. Past the WebSocket upgrade, the listener
 * moves them on
 */
export class InboundSockets {
  private readonly init: InboundSocketsInit
  private readonly log: Logger
  private readonly handshakeTimeout: number
  private readonly maxInboundHandshakes: number
  private readonly sockets: SocketRegistry<net.Socket, InboundPhase, InboundRecord>
  private readonly wsServer: WebSocketServer
  private readonly trustedProxies: TrustedProxies
  private readonly proxyProtocol: boolean
  private readonly proxied?: CounterGroup

  constructor (init: InboundSocketsInit) {
    this.init = init
    this.log = init.log
    this.handshakeTimeout = init.handshakeTimeout ?? HANDSHAKE_TIMEOUT
    this.maxInboundHandshakes = init.maxInboundHandshakes ?? Infinity
    this.trustedProxies = new TrustedProxies(init.trustedProxies)
    this.proxyProtocol = init.proxyProtocol ?? false

    if (this.proxyProtocol && this.trustedProxies.size === 0) {
      throw new InvalidParametersError('proxyProtocol needs trustedProxies: the proxies whose PROXY headers to read')
    }

    this.onUpgrade = this.onUpgrade.bind(this)
    this.onSecureConnection = this.onSecureConnection.bind(this)
    this.onTLSClientError = this.onTLSClientError.bind(this)
    this.onClientError = this.onClientError.bind(this)

    this.sockets = new SocketRegistry(INBOUND_PHASES, {
      terminate: socket => { socket.destroy() },
      // destroy() closes the file descriptor at once; the 'close' event, and
      // libp2p tearing the connection down in it, only follow
      isDestroyed: socket => socket.destroyed,
      onClose: (socket, onClose) => { socket.once('close', onClose) },
      // the deadline ends with the socket, so that nothing of ours outlives it
      onRelease: (socket, record) => {
        clearTimeout(record?.deadline)
        clearTimeout(record?.idle)
        this.init.countEvent('close')
      }
    })

    this.wsServer = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: init.maxPayload ?? MAX_PAYLOAD,
      // how long `ws` waits for the peer to answer a close frame it sent on a
      // protocol error (bad frame, oversize message): 30 seconds by default
      closeTimeout: init.closeTimeout ?? CLOSE_TIMEOUT
    } as ServerOptions)

    init.metrics?.registerMetricGroup('libp2p_websockets_inbound_connections_total', {
      label: 'address',
      help: 'Current active connections in WebSocket listener',
      calculate: () => {
        const address = init.address()
        return address == null ? {} : { [address]: this.sockets.size }
      }
    })

    // labelled by the proxy's address: there are only as many as the
    // operator trusts
    this.proxied = init.metrics?.registerCounterGroup('libp2p_websockets_listener_proxied_total', {
      label: 'proxy',
      help: 'WebSocket upgrades that arrived through a trusted proxy, by listener and proxy address'
    })

    init.metrics?.registerMetricGroup('libp2p_websockets_listener_sockets', {
      label: 'phase',
      help: 'Sockets the WebSocket listener holds, by phase from accept to open connection',
      calculate: () => Object.fromEntries(Object.entries(this.sockets.counts()).map(([phase, count]) => [`${init.address()} ${phase}`, count]))
    })
  }

  get size (): number {
    return this.sockets.size
  }

  /**
   * Sockets held right now, by phase
   */
  counts (): Record<InboundPhase, number> {
    return this.sockets.counts()
  }

  /**
   * Sockets that have not completed the WebSocket upgrade yet
   */
  handshaking (): number {
    let count = 0

    for (const phase of HANDSHAKE_PHASES) {
      count += this.sockets.count(phase)
    }

    return count
  }

  /**
   * Own a socket the net server accepted (paused), unless too many are
   * handshaking already, and hand it to the server its first byte asks for
   */
  accept (socket: net.Socket): void {
    if (this.handshaking() >= this.maxInboundHandshakes) {
      this.log('%d sockets are already handshaking, dropping %s', this.maxInboundHandshakes, socket.remoteAddress)
      this.init.countEvent('handshake_limit')
      socket.destroy()
      return
    }

    this.own(socket, 'accepted')

    if (this.proxyProtocol && this.trustedProxies.trusts(socket.remoteAddress)) {
      this.readProxyHeader(socket)
    } else {
      this.sniff(socket)
    }
  }

  /**
   * Own a socket from now on, in `phase`, with the handshake deadline running
   */
  private own (socket: net.Socket, phase: InboundPhase): void {
    const record: InboundRecord = {}
    record.deadline = setTimeout(() => {
      if (record.awaitingProxyHeader === true) {
        this.log('no PROXY header from %s within %dms, destroying socket', socket.remoteAddress, this.handshakeTimeout)
        this.init.countEvent('proxy_timeout')
      } else {
        this.log('no WebSocket upgrade within %dms in phase %s, destroying socket', this.handshakeTimeout, this.sockets.phaseOf(socket))
        this.init.countEvent('handshake_timeout')
      }

      socket.destroy()
    }, this.handshakeTimeout)

    this.sockets.track(socket, phase, record)

    socket.on('error', (err) => {
      this.log('socket error - %e', err)
      this.init.countEvent('error')
    })
  }

  /**
   * Read the PROXY header a trusted proxy sends first, as its bytes arrive,
   * then route what follows it. Any fault in it destroys the socket
   */
  private readProxyHeader (socket: net.Socket): void {
    const record = this.sockets.dataOf(socket)
    const reader = new ProxyHeaderReader()
    const proxy = socket.remoteAddress

    if (record == null) {
      return
    }

    record.awaitingProxyHeader = true

    const stop = (): void => {
      socket.removeListener('readable', onReadable)
      socket.removeListener('end', onEnd)
    }
    const fail = (reason: string, err: Error): void => {
      stop()
      this.log('invalid PROXY header from trusted proxy %s, destroying socket - %e', proxy, err)
      this.init.countEvent(`proxy_${reason}`)
      socket.destroy()
    }
    const onEnd = (): void => {
      fail('truncated', new ProxyHeaderError('malformed', 'The connection ended before the PROXY header did'))
    }
    const onReadable = (): void => {
      let chunk: Buffer | null

      while (!socket.destroyed && (chunk = socket.read()) != null) {
        let result: ReturnType<ProxyHeaderReader['push']>

        try {
          result = reader.push(chunk)
        } catch (err: any) {
          fail(err instanceof ProxyHeaderError ? err.reason : 'malformed', err)
          return
        }

        if (result == null) {
          continue
        }

        stop()
        record.awaitingProxyHeader = false
        record.proxied = result.header.source
        this.log('PROXY v%d header from trusted proxy %s: client %s', result.header.version, proxy,
          result.header.source == null ? 'is the proxy itself' : `${result.header.source.host}:${result.header.source.port}`)

        if (result.rest.length > 0) {
          socket.unshift(result.rest)
        }

        // once the listener above is gone (next tick), a new one is told of
        // the bytes already buffered
        process.nextTick(() => {
          this.sniff(socket)
        })
        return
      }
    }

    socket.on('readable', onReadable)
    socket.once('end', onEnd)
  }

  /**
   * Route the socket by its first byte, once it arrives
   */
  private sniff (socket: net.Socket): void {
    if (socket.destroyed) {
      return
    }

    socket.once('readable', () => {
      const chunk: Buffer | null = socket.read()

      if (chunk == null) {
        // the peer closed without sending anything
        socket.destroy()
        return
      }

      socket.unshift(chunk)

      // where PROXY headers are read, only a trusted proxy may send one, and
      // only one: a client passing its own through a proxy is forging
      if (this.proxyProtocol && startsWithProxySignature(chunk)) {
        this.log('%s sent a PROXY header it may not send, destroying socket', socket.remoteAddress)
        this.init.countEvent('proxy_untrusted')
        socket.destroy()
        return
      }

      // removing a 'readable' listener only takes effect on the next tick;
      // until then the stream will not flow, and the server we hand the socket
      // to needs it to
      process.nextTick(() => {
        this.route(socket, chunk[0])
      })
    })
  }

  private route (socket: net.Socket, firstByte: number): void {
    if (socket.destroyed) {
      return
    }

    // a TLS record starts with a content type byte below 32, an HTTP request
    // with a printable ASCII method name
    const protocol = firstByte < 32 || firstByte >= 127 ? 'tls' : 'http'
    const server = this.init.serverFor(protocol)

    if (server == null) {
      this.log('%s sent %s but this listener does not serve it, destroying socket', socket.remoteAddress, protocol === 'tls' ? 'TLS' : 'plain HTTP')
      this.init.countEvent(protocol === 'tls' ? 'unexpected_tls' : 'unexpected_plaintext')
      socket.destroy()
      return
    }

    this.sockets.advance(socket, protocol)
    server.emit('connection', socket)
  }

  /**
   * Follow the sockets an HTTP or HTTPS server is handed through their TLS
   * handshake and WebSocket upgrade, and destroy those whose handshake or
   * request fails
   */
  watch<Server extends EventEmitter> (server: Server): Server {
    server.on('upgrade', this.onUpgrade)
    server.on('clientError', this.onClientError)
    server.on('secureConnection', this.onSecureConnection)
    server.on('tlsClientError', this.onTLSClientError)

    return server
  }

  /**
   * The socket we accepted under a socket handed to us by the HTTP(S) server,
   * if it is still ours. A TLS socket wrapping an existing socket keeps it as
   * `_parent`, which is the only way back to it that Node.js offers
   */
  rawSocketOf (socket: Duplex): net.Socket | undefined {
    let current: any = socket

    while (current != null) {
      if (this.sockets.has(current)) {
        return current
      }

      current = current._parent
    }
  }

  /**
   * Move a socket we accepted on to `phase`; the handshake deadline ends as
   * the handshake does. False if the socket has closed in the meantime
   */
  advance (socket: net.Socket, phase: InboundPhase, onTerminate?: () => void): boolean {
    const record = this.sockets.dataOf(socket)

    if (!this.sockets.advance(socket, phase, onTerminate)) {
      return false
    }

    if (!handshakePhases.has(phase)) {
      clearTimeout(record?.deadline)
    }

    // a kept-alive HTTP connection asking for an upgrade is a WebSocket now
    if (phase !== 'request') {
      clearTimeout(record?.idle)
    }

    return true
  }

  /**
   * A plain HTTP request arrived for the user's handler: its connection
   * leaves the handshake (and the handshake deadline) for the `request`
   * phase. Between responses it may stay idle for `requestIdleTimeout`; the
   * HTTP server's `keepAliveTimeout` may close it sooner, and the listener's
   * close terminates it. False if the socket is not ours any more
   */
  serve (req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const raw = this.rawSocketOf(req.socket)
    const record = raw == null ? undefined : this.sockets.dataOf(raw)

    if (raw == null || record == null) {
      return false
    }

    if (this.sockets.phaseOf(raw) === 'http') {
      this.advance(raw, 'request')
    }

    // not while a response is being written, however long it takes
    clearTimeout(record.idle)
    record.requests = (record.requests ?? 0) + 1

    res.once('close', () => {
      record.requests = (record.requests ?? 1) - 1
      const idleTimeout = this.init.requestIdleTimeout ?? 0

      if (record.requests === 0 && idleTimeout > 0 && this.sockets.phaseOf(raw) === 'request') {
        record.idle = setTimeout(() => {
          this.log('HTTP connection idle for %dms, destroying socket', idleTimeout)
          this.init.countEvent('request_idle')
          raw.destroy()
        }, idleTimeout)
      }
    })

    return true
  }

  /**
   * Own a socket whose WebSocket upgrade request a user's HTTP(S) server
   * received, from that moment: what came before was that server's
   */
  adopt (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.handshaking() >= this.maxInboundHandshakes) {
      this.log('%d sockets are already handshaking, dropping %s', this.maxInboundHandshakes, req.socket.remoteAddress)
      this.init.countEvent('handshake_limit')
      socket.destroy()
      return
    }

    this.own(socket as net.Socket, 'websocket')
    this.onUpgrade(req, socket, head)
  }

  /**
   * Terminate every socket, whatever its phase, and resolve once every one is
   * gone. In-flight libp2p upgrades are aborted socket by socket, by the work
   * their phase registered
   */
  async terminateAll (): Promise<void> {
    this.wsServer.close()
    const terminated = this.sockets.terminateAll()
    this.log('terminated sockets by phase %o', terminated)

    await this.sockets.whenEmpty()
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const raw = this.rawSocketOf(socket)

    if (raw == null) {
      socket.destroy()
      return
    }

    if (this.sockets.phaseOf(raw) !== 'websocket') {
      this.advance(raw, 'websocket')
    }

    const client = this.clientOf(raw, req)

    this.wsServer.handleUpgrade(req, socket, head, (websocket) => {
      this.init.onWebSocket(websocket, req, raw, client)
    })
  }

  /**
   * The client of an upgrade request: the peer, or the client a trusted
   * proxy named in a PROXY header, then the forwarding headers' client if
   * that peer is a trusted proxy. The proxy's address is logged and counted
   */
  private clientOf (raw: net.Socket, req: http.IncomingMessage): ClientAddress {
    const proxied = this.sockets.dataOf(raw)?.proxied
    const peer = proxied ?? { host: raw.remoteAddress ?? '0.0.0.0', port: raw.remotePort ?? 0 }

    if (!this.trustedProxies.trusts(raw.remoteAddress)) {
      return peer
    }

    const client = this.trustedProxies.clientOf(peer, req.headers)
    this.log('upgrade through trusted proxy %s:%d for client %s:%d', raw.remoteAddress, raw.remotePort, client.host, client.port)
    this.proxied?.increment({ [`${this.init.address()} ${raw.remoteAddress}`]: true })

    return client
  }

  private onSecureConnection (socket: tls.TLSSocket): void {
    const raw = this.rawSocketOf(socket)

    if (raw != null) {
      this.advance(raw, 'http')
    }
  }

  private onTLSClientError (err: Error, socket: tls.TLSSocket): void {
    this.log('TLS client error - %e', err)
    this.init.countEvent('tls_error')
    socket.destroy()
    this.rawSocketOf(socket)?.destroy()
  }

  private onClientError (err: Error, socket: Duplex): void {
    this.log('HTTP client error - %e', err)
    this.init.countEvent('http_error')
    socket.destroy()
  }
}
