import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { getNetConfig, getThinWaistAddresses, ipPortToMultiaddr as toMultiaddr } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { TypedEventEmitter } from 'main-event'
import { WebSocketServer } from 'ws'
import { CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_PAYLOAD } from './constants.ts'
import { applySocketOptions } from './socket-options.ts'
import { SocketRegistry } from './socket-registry.ts'
import { dropOnProtocolError } from './terminate.ts'
import { webSocketToMaConn } from './websocket-to-conn.ts'
import type { WebSocketsSocketOptions } from './socket-options.ts'
import type { ComponentLogger, Logger, Listener, ListenerEvents, CreateListenerOptions, CounterGroup, MetricGroup, Metrics, TLSCertificate, Libp2pEvents, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { TypedEventTarget } from 'main-event'
import type { Duplex } from 'node:stream'
import type tls from 'node:tls'
import type { ServerOptions, WebSocket } from 'ws'

export interface WebSocketListenerComponents {
  logger: ComponentLogger
  events: TypedEventTarget<Libp2pEvents>
  metrics?: Metrics
}

export interface WebSocketListenerInit extends CreateListenerOptions {
  http?: http.ServerOptions
  https?: https.ServerOptions
  maxBufferedAmount?: number
  bufferedAmountPollInterval?: number
  closeTimeout?: number
  handshakeTimeout?: number
  maxPayload?: number
  inactivityTimeout?: number
  maxConnections?: number
  maxInboundHandshakes?: number
  backlog?: number
  listenOpts?: WebSocketsSocketOptions
  isStopping?(): boolean
}

/**
 * Where an inbound socket is between accept and a libp2p connection
 */
export type InboundPhase = 'accepted' | 'tls' | 'http' | 'websocket' | 'upgrading' | 'open'

const INBOUND_PHASES: readonly InboundPhase[] = ['accepted', 'tls', 'http', 'websocket', 'upgrading', 'open']

/**
 * Phases in which a socket has not completed the WebSocket upgrade yet: the
 * handshake deadline and the handshake cap apply to these
 */
const HANDSHAKE_PHASES: ReadonlySet<InboundPhase> = new Set(['accepted', 'tls', 'http', 'websocket'])

interface WebSocketListenerMetrics {
  status?: MetricGroup
  errors?: CounterGroup
  events?: CounterGroup
}

type ListenerStatus = 'ready' | 'listening' | 'closing' | 'closed'

export class WebSocketListener extends TypedEventEmitter<ListenerEvents> implements Listener {
  private readonly components: WebSocketListenerComponents
  private readonly log: Logger
  private readonly init: WebSocketListenerInit
  private readonly upgrader: Upgrader
  private readonly server: net.Server
  private readonly wsServer: WebSocketServer
  private readonly sockets: SocketRegistry<net.Socket, InboundPhase>
  private readonly deadlines: Map<net.Socket, ReturnType<typeof setTimeout>>
  private readonly metrics: WebSocketListenerMetrics
  private readonly handshakeTimeout: number
  private readonly maxInboundHandshakes: number
  private http?: http.Server
  private https?: https.Server
  private addr?: string
  private listeningMultiaddr?: Multiaddr
  private status: ListenerStatus
  private closed?: Promise<void>

  constructor (components: WebSocketListenerComponents, init: WebSocketListenerInit) {
    super()

    this.components = components
    this.init = init
    this.log = components.logger.forComponent('libp2p:websockets:listener')
    this.upgrader = init.upgrader
    this.handshakeTimeout = init.handshakeTimeout ?? HANDSHAKE_TIMEOUT
    this.maxInboundHandshakes = init.maxInboundHandshakes ?? Infinity
    this.status = 'ready'
    this.deadlines = new Map()

    this.onCertificateProvision = this.onCertificateProvision.bind(this)
    this.onCertificateRenew = this.onCertificateRenew.bind(this)
    this.onUpgrade = this.onUpgrade.bind(this)
    this.onSecureConnection = this.onSecureConnection.bind(this)
    this.onTLSClientError = this.onTLSClientError.bind(this)

    this.sockets = new SocketRegistry(INBOUND_PHASES, {
      terminate: socket => { socket.destroy() },
      // destroy() closes the file descriptor at once; the 'close' event, and
      // libp2p tearing the connection down in it, only follow
      isDestroyed: socket => socket.destroyed,
      onClose: (socket, onClose) => { socket.once('close', onClose) }
    })

    this.wsServer = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: init.maxPayload ?? MAX_PAYLOAD,
      // how long `ws` waits for the peer to answer a close frame it sent on a
      // protocol error (bad frame, oversize message): 30 seconds by default
      closeTimeout: init.closeTimeout ?? CLOSE_TIMEOUT
    } as ServerOptions)

    this.server = net.createServer({
      pauseOnConnect: true,
      noDelay: init.listenOpts?.noDelay ?? true,
      keepAlive: init.listenOpts?.keepAlive ?? true,
      keepAliveInitialDelay: init.listenOpts?.keepAliveInitialDelay
    }, (socket) => {
      this.onSocket(socket)
    })

    if (init.maxConnections != null) {
      this.server.maxConnections = init.maxConnections
    }

    components.metrics?.registerMetricGroup('libp2p_websockets_inbound_connections_total', {
      label: 'address',
      help: 'Current active connections in WebSocket listener',
      calculate: () => {
        if (this.addr == null) {
          return {}
        }

        return {
          [this.addr]: this.sockets.size
        }
      }
    })

    components.metrics?.registerMetricGroup('libp2p_websockets_listener_sockets', {
      label: 'phase',
      help: 'Sockets the WebSocket listener holds, by phase from accept to open connection',
      calculate: () => {
        const counts: Record<string, number> = {}

        for (const [phase, count] of Object.entries(this.sockets.counts())) {
          counts[`${this.addr} ${phase}`] = count
        }

        return counts
      }
    })

    this.metrics = {
      status: components.metrics?.registerMetricGroup('libp2p_websockets_listener_status_info', {
        label: 'address',
        help: 'Current status of the WebSocket listener socket'
      }),
      errors: components.metrics?.registerMetricGroup('libp2p_websockets_listener_errors_total', {
        label: 'address',
        help: 'Total count of WebSocket listener errors by type'
      }),
      events: components.metrics?.registerMetricGroup('libp2p_websockets_listener_events_total', {
        label: 'address',
        help: 'Total count of WebSocket listener events by type'
      })
    }
  }

  /**
   * Sockets held right now, by phase
   */
  socketCounts (): Record<InboundPhase, number> {
    return this.sockets.counts()
  }

  private countEvent (event: string): void {
    this.metrics.events?.increment({ [`${this.addr} ${event}`]: true })
  }

  private countError (error: string): void {
    this.metrics.errors?.increment({ [`${this.addr} ${error}`]: true })
  }

  private onSocket (socket: net.Socket): void {
    if (this.status !== 'listening') {
      socket.destroy()
      return
    }

    this.countEvent('connection')

    if (this.maxInboundHandshakes !== Infinity && this.handshakingSockets() >= this.maxInboundHandshakes) {
      this.log('%d sockets are already handshaking, dropping %s', this.maxInboundHandshakes, socket.remoteAddress)
      this.countEvent('handshake_limit')
      socket.destroy()
      return
    }

    this.sockets.track(socket, 'accepted')

    this.deadlines.set(socket, setTimeout(() => {
      if (HANDSHAKE_PHASES.has(this.sockets.phaseOf(socket) ?? 'open')) {
        this.log('no WebSocket upgrade within %dms in phase %s, destroying socket', this.handshakeTimeout, this.sockets.phaseOf(socket))
        this.countEvent('handshake_timeout')
        socket.destroy()
      }
    }, this.handshakeTimeout))

    socket.on('error', (err) => {
      this.log('socket error - %e', err)
      this.countEvent('error')
    })
    socket.once('close', () => {
      this.clearDeadline(socket)
      this.countEvent('close')
    })

    socket.once('readable', () => {
      const chunk: Buffer | null = socket.read(1)

      if (chunk == null) {
        // the peer closed without sending anything
        socket.destroy()
        return
      }

      socket.unshift(chunk)

      // removing a 'readable' listener only takes effect on the next tick;
      // until then the stream will not flow, and the server we hand the socket
      // to needs it to
      process.nextTick(() => {
        this.routeSocket(socket, chunk[0])
      })
    })
  }

  private routeSocket (socket: net.Socket, firstByte: number): void {
    if (socket.destroyed) {
      return
    }

    // a TLS record starts with a content type byte below 32, an HTTP request
    // with a printable ASCII method name
    const isTLS = firstByte < 32 || firstByte >= 127
    const server = isTLS ? this.https : this.http

    if (server == null) {
      this.log('%s sent %s but this listener does not serve it, destroying socket', socket.remoteAddress, isTLS ? 'TLS' : 'plain HTTP')
      this.countEvent(isTLS ? 'unexpected_tls' : 'unexpected_plaintext')
      socket.destroy()
      return
    }

    this.sockets.advance(socket, isTLS ? 'tls' : 'http')
    server.emit('connection', socket)
  }

  /**
   * The deadline ends with the handshake, so that an idle connection holds no
   * timer of ours
   */
  private clearDeadline (socket: net.Socket): void {
    clearTimeout(this.deadlines.get(socket))
    this.deadlines.delete(socket)
  }

  private handshakingSockets (): number {
    let count = 0

    for (const [phase, n] of Object.entries(this.sockets.counts())) {
      if (HANDSHAKE_PHASES.has(phase as InboundPhase)) {
        count += n
      }
    }

    return count
  }

  /**
   * The socket we accepted under a socket handed to us by the HTTP(S) server.
   * A TLS socket wrapping an existing socket keeps it as `_parent`, which is
   * the only way back to it that Node.js offers
   */
  private rawSocketOf (socket: Duplex): net.Socket | undefined {
    let current: any = socket

    while (current != null) {
      if (this.sockets.has(current)) {
        return current
      }

      current = current._parent
    }
  }

  private onSecureConnection (socket: tls.TLSSocket): void {
    const raw = this.rawSocketOf(socket)

    if (raw != null) {
      this.sockets.advance(raw, 'http')
    }
  }

  private onTLSClientError (err: Error, socket: tls.TLSSocket): void {
    this.log('TLS client error - %e', err)
    this.countEvent('tls_error')
    socket.destroy()
    this.rawSocketOf(socket)?.destroy()
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const raw = this.rawSocketOf(socket)

    if (raw == null || this.status !== 'listening') {
      socket.destroy()
      return
    }

    this.sockets.advance(raw, 'websocket')
    this.wsServer.handleUpgrade(req, socket, head, (websocket) => {
      this.onWebSocket(websocket, req, raw)
    })
  }

  private onWebSocket (websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket): void {
    if (raw.destroyed || this.status !== 'listening') {
      websocket.terminate()
      return
    }

    const socket = req.socket as net.Socket
    dropOnProtocolError(websocket, socket)
    // the HTTPS server hands us the TLS socket wrapping the one we accepted
    const protocol = (socket as tls.TLSSocket).encrypted === true ? '/tls/ws' : '/ws'
    const controller = new AbortController()
    this.clearDeadline(raw)
    applySocketOptions(socket, this.init.listenOpts)

    this.sockets.advance(raw, 'upgrading', () => {
      controller.abort()
    })

    const maConn = webSocketToMaConn({
      websocket,
      socket,
      remoteAddr: toMultiaddr(socket.remoteAddress ?? raw.remoteAddress ?? '0.0.0.0', socket.remotePort ?? raw.remotePort ?? 0).encapsulate(protocol),
      metrics: this.metrics.events,
      metricPrefix: `${this.addr} `,
      direction: 'inbound',
      log: this.components.logger.forComponent('libp2p:websockets:connection'),
      maxBufferedAmount: this.init.maxBufferedAmount,
      bufferedAmountPollInterval: this.init.bufferedAmountPollInterval,
      closeTimeout: this.init.closeTimeout,
      inactivityTimeout: this.init.inactivityTimeout,
      isStopping: this.init.isStopping
    })

    this.log('new inbound connection %s', maConn.remoteAddr)

    this.upgrader.upgradeInbound(maConn, {
      signal: controller.signal
    })
      .then(() => {
        this.sockets.advance(raw, 'open')
      }, (err) => {
        this.log.error('inbound connection failed to upgrade - %e', err)
        this.countError('inbound_upgrade')
        maConn.abort(err)
      })
  }

  async listen (ma: Multiaddr): Promise<void> {
    if (this.status !== 'ready') {
      throw new Error(`Cannot listen when the listener is ${this.status}`)
    }

    if (WebSockets.exactMatch(ma)) {
      this.http = this.createHttpServer()
    } else if (WebSocketsSecure.exactMatch(ma)) {
      this.https = this.createHttpsServer()
    }

    const config = getNetConfig(ma)
    this.addr = `${config.host}:${config.port}`

    await new Promise<void>((resolve, reject) => {
      const onListening = (): void => {
        this.server.removeListener('error', onError)
        resolve()
      }
      const onError = (err: Error): void => {
        this.server.removeListener('listening', onListening)
        this.countError('listen_error')
        reject(err)
      }

      this.server.once('listening', onListening)
      this.server.once('error', onError)
      this.server.listen({
        ...config,
        backlog: this.init.backlog,
        ipv6Only: config.type === 'ip6'
      })
    })

    this.server.on('drop', () => {
      this.countEvent('drop')
    })
    this.server.on('error', (err) => {
      this.log.error('server error - %e', err)
      this.countError('server_error')
    })

    // label metrics with the port we got, not the 0 we may have asked for
    const address = this.server.address()
    this.addr = typeof address === 'object' && address != null ? `${config.host}:${address.port}` : this.addr
    this.status = 'listening'
    this.listeningMultiaddr = ma
    this.components.events.addEventListener('certificate:provision', this.onCertificateProvision)
    this.components.events.addEventListener('certificate:renew', this.onCertificateRenew)
    this.metrics.status?.update({ [this.addr]: 1 })
    this.safeDispatchEvent('listening')
  }

  private createHttpServer (): http.Server {
    const server = http.createServer(this.init.http ?? {}, this.onHttpRequest)
    server.on('upgrade', this.onUpgrade)
    server.on('clientError', this.onHttpClientError)

    return server
  }

  private createHttpsServer (certificate?: TLSCertificate): https.Server {
    const server = https.createServer({
      ...(this.init.https ?? this.init.http),
      ...certificate
    }, this.onHttpRequest)
    server.on('upgrade', this.onUpgrade)
    server.on('clientError', this.onHttpClientError)
    server.on('secureConnection', this.onSecureConnection)
    server.on('tlsClientError', this.onTLSClientError)

    return server
  }

  private onCertificateProvision (event: CustomEvent<TLSCertificate>): void {
    if (this.https != null) {
      this.log('auto-tls certificate found but already listening on https')
      return
    }

    this.log('auto-tls certificate found, starting https server')
    this.https = this.createHttpsServer(event.detail)
    this.safeDispatchEvent('listening')
  }

  private onCertificateRenew (event: CustomEvent<TLSCertificate>): void {
    this.log('auto-tls certificate renewed, restarting https server')
    // sockets already handed to the old server stay in the registry and live
    // on with the old certificate; new ones go to the new server
    this.https?.close()
    this.https = this.createHttpsServer(event.detail)
  }

  async close (): Promise<void> {
    this.closed ??= this.doClose()

    await this.closed
  }

  private async doClose (): Promise<void> {
    const wasListening = this.status === 'listening'
    this.status = 'closing'
    this.components.events.removeEventListener('certificate:provision', this.onCertificateProvision)
    this.components.events.removeEventListener('certificate:renew', this.onCertificateRenew)

    const serverClosed = new Promise<void>(resolve => {
      // calls back with ERR_SERVER_NOT_RUNNING if we never listened: closed
      // either way
      this.server.close(() => { resolve() })
    })
    this.http?.close()
    this.https?.close()
    this.wsServer.close()

    // reaches only sockets the HTTP servers track themselves, which is none of
    // ours since they never listen: the registry below is what closes sockets
    this.http?.closeAllConnections()
    this.https?.closeAllConnections()

    const terminated = this.sockets.terminateAll()
    this.log('closing, terminated sockets by phase %o', terminated)

    await Promise.all([
      serverClosed,
      this.sockets.whenEmpty()
    ])

    if (this.addr != null) {
      this.metrics.status?.update({ [this.addr]: 0 })
    }

    this.status = 'closed'

    if (wasListening) {
      this.log('closed')
    }

    this.safeDispatchEvent('close')
  }

  getAddrs (): Multiaddr[] {
    const address = this.server.address()

    if (address == null || this.status !== 'listening') {
      return []
    }

    if (typeof address === 'string') {
      return [multiaddr(`/unix/${encodeURIComponent(address)}/ws`)]
    }

    const addrs = getThinWaistAddresses(this.listeningMultiaddr, address.port)

    return [
      ...(this.http == null ? [] : addrs.map(ma => ma.encapsulate('/ws'))),
      ...(this.https == null ? [] : addrs.map(ma => ma.encapsulate('/tls/ws')))
    ]
  }

  updateAnnounceAddrs (): void {

  }

  private readonly onHttpRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.countEvent('http_request')
    res.writeHead(400, {
      'content-type': 'text/plain',
      connection: 'close'
    })
    res.end('Only WebSocket connections are supported')
  }

  private readonly onHttpClientError = (err: Error, socket: Duplex): void => {
    this.log('HTTP client error - %e', err)
    this.countEvent('http_error')
    socket.destroy()
  }
}

export function createListener (components: WebSocketListenerComponents, init: WebSocketListenerInit): Listener {
  return new WebSocketListener(components, init)
}
