import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { AlreadyStartedError, ListenError } from '@libp2p/interface'
import { getNetConfig, getThinWaistAddresses } from '@libp2p/utils'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { TypedEventEmitter } from 'main-event'
import { AttachedServer } from './attached-server.ts'
import { TrustedProxies } from './client-address.ts'
import { CLOSE_TIMEOUT, REQUEST_IDLE_TIMEOUT } from './constants.ts'
import { InboundConnections } from './inbound-connections.ts'
import { InboundSockets } from './inbound-sockets.ts'
import { closeServer, listenOn, socketOptions } from './utils.ts'
import { WebSocketUpgrades } from './websocket-upgrades.ts'
import type { ClientAddress } from './client-address.ts'
import type { InboundPhase } from './inbound-sockets.ts'
import type { WebSocketsSocketOptions } from './utils.ts'
import type { WebSocketMultiaddrConnectionInit } from './websocket-to-conn.ts'
import type { ComponentLogger, Logger, Listener, ListenerEvents, CreateListenerOptions, CounterGroup, MetricGroup, Metrics, TLSCertificate, Libp2pEvents } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { TypedEventTarget } from 'main-event'
import type { WebSocket } from 'ws'

export interface WebSocketListenerComponents {
  logger: ComponentLogger
  events: TypedEventTarget<Libp2pEvents>
  metrics?: Metrics
}

/**
 * What the transport creates every connection with: the options that bound
 * it, and the signal telling it that the node is stopping
 */
export type ConnectionOptions = Pick<WebSocketMultiaddrConnectionInit, 'log' | 'maxBufferedAmount' | 'bufferedAmountPollInterval' | 'closeTimeout' | 'inactivityTimeout' | 'stopping'>

export interface WebSocketListenerInit extends CreateListenerOptions {
  http?: http.ServerOptions
  https?: https.ServerOptions
  closeTimeout?: number
  handshakeTimeout?: number
  maxPayload?: number
  maxConnections?: number
  maxInboundHandshakes?: number
  backlog?: number
  listenOpts?: WebSocketsSocketOptions
  connection?: ConnectionOptions
  trustedProxies?: string[]
  proxyProtocol?: boolean
  requestHandler?(req: http.IncomingMessage, res: http.ServerResponse): void
  server?: http.Server | https.Server
  upgradePath?: string
}

export interface WebSocketListenerMetrics {
  status?: MetricGroup
  errors?: CounterGroup
  events?: CounterGroup
}

/**
 * `starting` from a call to listen() until the server listens; `closing` from
 * the first call to close() until every socket is gone and every connection
 * closed. Only ever forward
 */
type ListenerStatus = 'ready' | 'starting' | 'listening' | 'closing' | 'closed'

export class WebSocketListener extends TypedEventEmitter<ListenerEvents> implements Listener {
  private readonly components: WebSocketListenerComponents
  private readonly log: Logger
  private readonly init: WebSocketListenerInit
  private readonly server: net.Server
  private readonly metrics: WebSocketListenerMetrics
  private readonly sockets: InboundSockets
  private readonly upgrades: WebSocketUpgrades
  private readonly connections: InboundConnections
  private attached?: AttachedServer
  private http?: http.Server
  private https?: https.Server
  private addr?: string
  private listeningMultiaddr?: Multiaddr
  private status: ListenerStatus
  private closing?: Promise<void>

  constructor (components: WebSocketListenerComponents, init: WebSocketListenerInit) {
    super()

    this.components = components
    this.init = init
    this.log = components.logger.forComponent('libp2p:websockets:listener')
    this.status = 'ready'
    this.httpRequestHandler = this.httpRequestHandler.bind(this)
    this.onCertificateProvision = this.onCertificateProvision.bind(this)
    this.onCertificateRenew = this.onCertificateRenew.bind(this)

    const inbound = {
      log: this.log,
      metrics: components.metrics,
      trustedProxies: new TrustedProxies(init.trustedProxies),
      address: () => this.addr,
      countEvent: (event: string) => { this.metrics.events?.increment({ [`${this.addr} ${event}`]: true }) }
    }
    this.sockets = new InboundSockets({
      ...init,
      ...inbound,
      requestIdleTimeout: init.connection?.inactivityTimeout ?? REQUEST_IDLE_TIMEOUT,
      serverFor: protocol => protocol === 'tls' ? this.https : this.http
    })
    this.upgrades = new WebSocketUpgrades({
      ...init,
      ...inbound,
      sockets: this.sockets,
      onWebSocket: this.onWsServerConnection.bind(this)
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

    this.connections = new InboundConnections({ ...init, ...inbound, logger: components.logger, sockets: this.sockets, metrics: this.metrics })

    this.server = net.createServer({ pauseOnConnect: true, ...socketOptions(init.listenOpts) }, (socket) => {
      this.onSocketConnection(socket)
    })

    if (init.maxConnections != null) {
      this.server.maxConnections = init.maxConnections
    }
  }

  /**
   * Sockets held right now, by phase
   */
  socketCounts (): Record<InboundPhase, number> {
    return this.sockets.counts()
  }

  onSocketConnection (socket: net.Socket): void {
    if (this.status !== 'listening') {
      socket.destroy()
      return
    }

    this.metrics.events?.increment({ [`${this.addr} connection`]: true })
    this.sockets.accept(socket)
  }

  /**
   * Take a WebSocket whose upgrade is complete to a libp2p connection
   */
  onWsServerConnection (websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket, client: ClientAddress): void {
    // the listener may have begun to close while `ws` completed the upgrade
    if (this.status !== 'listening') {
      websocket.terminate()
      return
    }

    this.connections.upgrade(websocket, req, raw, client)
  }

  /**
   * Listen on `ma`. Resolves once the listener listens, or once a close()
   * called in the meantime has closed it: as with `@libp2p/tcp`, listen() does
   * not fail then, and `getAddrs()` is empty. Rejects with an
   * `AlreadyStartedError` when listen() was called before, a `ListenError`
   * once the listener is closed (libp2p creates a new one for each start), or
   * the error binding the address gave, after which it may listen again
   */
  async listen (ma: Multiaddr): Promise<void> {
    if (this.status === 'starting' || this.status === 'listening') {
      throw new AlreadyStartedError('The WebSocket listener is already listening')
    }

    if (this.status !== 'ready') {
      throw new ListenError('The WebSocket listener is closed: a closed listener cannot listen again')
    }

    if (this.init.server != null) {
      this.attach(ma, this.init.server)
      return
    }

    // throws for an address it cannot bind (a Unix socket path, say), before
    // anything changes: the listener may still listen elsewhere
    const config = getNetConfig(ma)
    this.status = 'starting'
    this.addr = `${config.host}:${config.port}`
    this.http = WebSockets.exactMatch(ma) ? this.upgrades.watch(http.createServer(this.init.http ?? {}, this.httpRequestHandler)) : undefined
    this.https = WebSocketsSecure.exactMatch(ma) ? this.createHttpsServer() : undefined

    try {
      await listenOn(this.server, { ...config, backlog: this.init.backlog, ipv6Only: config.type === 'ip6' })
    } catch (err) {
      this.metrics.errors?.increment({ [`${this.addr} listen_error`]: true })

      if (this.status === 'starting') {
        this.status = 'ready'
        this.http = this.https = undefined
      }

      throw err
    }

    // close() was called in the meantime
    if (this.status !== 'starting') {
      return
    }

    this.server.on('drop', () => { this.metrics.events?.increment({ [`${this.addr} drop`]: true }) })
    this.server.on('error', (err) => {
      this.log.error('server error - %e', err)
      this.metrics.errors?.increment({ [`${this.addr} server_error`]: true })
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

  /**
   * Take the WebSocket upgrade requests of the user's server, which listens
   * already, instead of listening ourselves
   */
  private attach (ma: Multiaddr, server: http.Server | https.Server): void {
    this.attached = new AttachedServer(server, ma, {
      upgradePath: this.init.upgradePath,
      onUpgrade: (req, socket, head) => {
        if (this.status === 'listening') {
          this.metrics.events?.increment({ [`${this.addr} connection`]: true })
          this.upgrades.adopt(req, socket, head)
        }
      }
    })
    this.addr = this.attached.addr
    this.status = 'listening'
    this.metrics.status?.update({ [this.addr]: 1 })
    this.log('attached to the server on %s', this.addr)
    this.safeDispatchEvent('listening')
  }

  /**
   * The HTTP(S) servers never listen: they are handed the sockets we accept
   */
  private createHttpsServer (certificate?: TLSCertificate): https.Server {
    return this.upgrades.watch(https.createServer({ ...(this.init.https ?? this.init.http), ...certificate }, this.httpRequestHandler))
  }

  onCertificateProvision (event: CustomEvent<TLSCertificate>): void {
    if (this.https != null) {
      this.log('auto-tls certificate found but already listening on https')
      return
    }

    this.log('auto-tls certificate found, starting https server')
    this.https = this.createHttpsServer(event.detail)
    this.safeDispatchEvent('listening')
  }

  onCertificateRenew (event: CustomEvent<TLSCertificate>): void {
    this.log('auto-tls certificate renewed, restarting https server')
    // sockets already handed to the old server stay ours and live on with
    // the old certificate; new ones go to the new server
    this.https?.close()
    this.https = this.createHttpsServer(event.detail)
  }

  /**
   * Stop listening and terminate every socket, whatever its phase. Resolves
   * once every socket is gone and every connection it accepted has closed;
   * concurrent callers share one close, and a listen() still waiting resolves
   */
  async close (): Promise<void> {
    this.closing ??= this.closeOnce()

    await this.closing
  }

  private async closeOnce (): Promise<void> {
    this.status = 'closing'
    this.components.events.removeEventListener('certificate:provision', this.onCertificateProvision)
    this.components.events.removeEventListener('certificate:renew', this.onCertificateRenew)

    const serverClosed = closeServer(this.server)

    this.attached?.detach()
    this.http?.close()
    this.https?.close()

    // reaches only sockets the HTTP servers track themselves, which is none of
    // ours since they never listen: terminating ours is what closes them
    this.http?.closeAllConnections()
    this.https?.closeAllConnections()

    this.upgrades.close()
    // taken before the sockets go: the registry lets go of each as it
    // terminates it, and no connection is created from here on
    const connections = this.sockets.connections()
    await Promise.all([serverClosed, this.sockets.terminateAll()])
    // libp2p sees a connection close when its WebSocket does, a few ticks
    // after the socket: resolve when libp2p holds none of them, as upstream does
    await this.connections.whenClosed(connections, this.init.closeTimeout ?? CLOSE_TIMEOUT)

    if (this.addr != null) {
      this.metrics.status?.update({ [this.addr]: 0 })
    }

    this.status = 'closed'
    this.log('closed')
    this.safeDispatchEvent('close')
  }

  getAddrs (): Multiaddr[] {
    if (this.attached != null) {
      return this.status === 'listening' ? this.attached.getAddrs() : []
    }

    const address = this.server.address()

    // a string would be the path of a Unix socket, which listen() never binds:
    // getNetConfig() takes IP and DNS addresses only
    if (address == null || typeof address === 'string' || this.status !== 'listening') {
      return []
    }

    const addrs = getThinWaistAddresses(this.listeningMultiaddr, address.port)

    return [
      ...(this.http == null ? [] : addrs.map(ma => ma.encapsulate('/ws'))),
      ...(this.https == null ? [] : addrs.map(ma => ma.encapsulate('/tls/ws')))
    ]
  }

  updateAnnounceAddrs (): void {

  }

  private httpRequestHandler (req: http.IncomingMessage, res: http.ServerResponse): void {
    this.metrics.events?.increment({ [`${this.addr} http_request`]: true })

    if (this.init.requestHandler != null && this.sockets.serve(req, res)) {
      try {
        this.init.requestHandler(req, res)
      } catch (err) {
        this.log.error('the request handler threw - %e', err)
        this.metrics.errors?.increment({ [`${this.addr} request_handler`]: true })
        res.destroy()
      }

      return
    }

    res.writeHead(400, {
      'content-type': 'text/plain',
      connection: 'close'
    })
    res.end('Only WebSocket connections are supported')
  }
}

export function createListener (components: WebSocketListenerComponents, init: WebSocketListenerInit): Listener {
  return new WebSocketListener(components, init)
}
