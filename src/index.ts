/**
 * @packageDocumentation
 *
 * A [libp2p transport](https://libp2p.io/docs/transports-overview/) based on
 * [WebSockets](https://developer.mozilla.org/en-US/docs/Web/API/WebSockets_API),
 * a drop-in replacement for `@libp2p/websockets` whose shutdown is bounded:
 * every socket is tracked from the moment it is accepted or dialed, and
 * terminated when the listener closes or the node stops.
 *
 * @example
 *
 * ```TypeScript
 * import { createLibp2p } from 'libp2p'
 * import { webSockets } from '@cleanstop/libp2p-websockets'
 * import { multiaddr } from '@multiformats/multiaddr'
 *
 * const node = await createLibp2p({
 *   transports: [
 *     webSockets()
 *   ]
 * //... other config
 * })
 * await node.start()
 *
 * const ma = multiaddr('/dns4/example.com/tcp/9090/tls/ws')
 * await node.dial(ma)
 * ```
 */

import { AbortError, ConnectionFailedError, serviceCapabilities, transportSymbol } from '@libp2p/interface'
import { WebSockets as WebSocketsMatcher, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { multiaddrToUri as toUri } from '@multiformats/multiaddr-to-uri'
import { pEvent } from 'p-event'
import { CustomProgressEvent } from 'progress-events'
import { CLOSE_TIMEOUT, MAX_PAYLOAD, OUTBOUND_PHASES } from './constants.ts'
import { createListener } from './listener.ts'
import { SocketRegistry } from './socket-registry.ts'
import { applySocketOptions, dropOnProtocolError, terminateWebSocket } from './utils.ts'
import WebSocket from './web-socket.ts'
import { webSocketToMaConn } from './websocket-to-conn.ts'
import type { ConnectionOptions } from './listener.ts'
import type { WebSocketsSocketOptions } from './utils.ts'
import type { WebSocketLike } from './websocket-to-conn.ts'
import type { Transport, CreateListenerOptions, DialTransportOptions, Listener, AbortOptions, ComponentLogger, Logger, Connection, OutboundConnectionUpgradeEvents, Metrics, CounterGroup, Libp2pEvents, Startable } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { TypedEventTarget } from 'main-event'
import type http from 'node:http'
import type https from 'node:https'
import type { Socket } from 'node:net'
import type { ProgressEvent } from 'progress-events'
import type { ClientOptions } from 'ws'

export type { WebSocketsSocketOptions } from './utils.ts'
export type { InboundPhase } from './inbound-sockets.ts'

/**
 * Options of the transport. `http`, `https`, `maxBufferedAmount` and
 * `bufferedAmountPollInterval` mean what they mean in `@libp2p/websockets`;
 * the others bound how long sockets may live and how much a peer may send
 */
export interface WebSocketsInit extends AbortOptions {
  /**
   * Options used to create the HTTP server
   */
  http?: http.ServerOptions

  /**
   * Options used to create the HTTPS server. `options.http` will be used if
   * unspecified.
   */
  https?: https.ServerOptions

  /**
   * Options for the `ws` WebSocket used to dial in Node.js: extra headers, an
   * agent, and TLS options such as `ca` or `rejectUnauthorized` to dial a
   * `/tls/ws` peer with a self-signed certificate. Ignored in browsers
   */
  websocket?: ClientOptions

  /**
   * How large the outgoing [bufferedAmount](https://websockets.spec.whatwg.org/#dom-websocket-bufferedamount)
   * property of incoming and outgoing websockets is allowed to get in bytes.
   *
   * If this limit is exceeded, backpressure will be applied to the writer.
   *
   * @default 4_194_304
   */
  maxBufferedAmount?: number

  /**
   * If the [bufferedAmount](https://websockets.spec.whatwg.org/#dom-websocket-bufferedamount)
   * property of a WebSocket exceeds `maxBufferedAmount`, poll the field every
   * this number of ms to see if the socket can accept new data. Only used
   * where the socket under the WebSocket cannot be reached (browsers); in
   * Node.js writing resumes as soon as the socket has taken what was sent
   *
   * @default 10
   */
  bufferedAmountPollInterval?: number

  /**
   * How long in ms a graceful `close()` of a connection waits for the peer to
   * complete the WebSocket closing handshake before the socket is terminated
   *
   * @default 2_000
   */
  closeTimeout?: number

  /**
   * How long in ms an inbound socket may take from accept to a completed
   * WebSocket upgrade (first byte, TLS handshake, HTTP request) before it is
   * destroyed. libp2p's own `inboundUpgradeTimeout` starts after this
   *
   * @default 10_000
   */
  handshakeTimeout?: number

  /**
   * Largest incoming WebSocket message in bytes. A larger one closes the
   * connection with code 1009. libp2p with noise never sends more than 65,537
   * bytes in one message
   *
   * @default 1_048_576
   */
  maxPayload?: number

  /**
   * Close an inbound connection with no traffic for this many ms, 0 to never
   * (Node.js only)
   *
   * @default 120_000
   */
  inboundSocketInactivityTimeout?: number

  /**
   * Close an outbound connection with no traffic for this many ms, 0 to never
   * (Node.js only)
   *
   * @default 120_000
   */
  outboundSocketInactivityTimeout?: number

  /**
   * Refuse inbound sockets beyond this many at once: they are destroyed as
   * they arrive
   *
   * @default Infinity
   */
  maxConnections?: number

  /**
   * Refuse inbound sockets while this many have not completed the WebSocket
   * upgrade yet, so stalled clients cannot hold every socket the node has
   *
   * @default Infinity
   */
  maxInboundHandshakes?: number

  /**
   * Length of the queue of connections the kernel accepted that the listener
   * has not taken yet
   *
   * @see https://nodejs.org/api/net.html#serverlistenoptions-callback
   * @default 511
   */
  backlog?: number

  /**
   * Options for the sockets of outbound connections
   */
  dialOpts?: WebSocketsSocketOptions

  /**
   * Options for the sockets of inbound connections
   */
  listenOpts?: WebSocketsSocketOptions

  /**
   * Proxies (addresses or CIDR ranges, IPv4 and IPv6, as in Express's
   * `trust proxy`) whose word on the client's address is taken: the
   * `Forwarded` or `X-Forwarded-For` header of a WebSocket upgrade request
   * they pass on, and with `proxyProtocol` the PROXY header they send. The
   * connection's `remoteAddr`, which libp2p's per-host limits and connection
   * gater see, is then the client's; the proxy's address is logged and
   * counted in `libp2p_websockets_listener_proxied_total`. Others connect as
   * before, their forwarding headers ignored
   *
   * @default []
   */
  trustedProxies?: string[]

  /**
   * Read a PROXY protocol header (v1 or v2) from every connection a trusted
   * proxy opens: one without a valid header within `handshakeTimeout` is
   * destroyed, as is a PROXY header from anyone else. Needs `trustedProxies`
   *
   * @default false
   */
  proxyProtocol?: boolean

  /**
   * Serve the HTTP requests on the listener's port that are not WebSocket
   * upgrades (an app, a health check) instead of answering 400. Their
   * connections are closed with the listener, and after
   * `inboundSocketInactivityTimeout` without traffic
   *
   * @default undefined (400 Bad Request)
   */
  requestHandler?(req: http.IncomingMessage, res: http.ServerResponse): void

  /**
   * A listening `http.Server` or `https.Server` of the user's to take
   * WebSocket upgrade requests from instead of listening on a port: listen
   * on one `/ws` (`/tls/ws` for HTTPS) address, whose host and port are the
   * server's. Closing the listener leaves the server and its other
   * connections alone. Until the upgrade request, connections are that
   * server's to bound (`headersTimeout`, `requestTimeout`, `maxConnections`);
   * `handshakeTimeout`, `maxInboundHandshakes`, `trustedProxies` (forwarding
   * headers only) apply from then on
   *
   * @default undefined
   */
  server?: http.Server | https.Server

  /**
   * With `server`, take only upgrade requests for this path, leaving the
   * others to the server's other `upgrade` listeners
   *
   * @default undefined (every upgrade request)
   */
  upgradePath?: string
}

/**
 * The libp2p components the transport uses, supplied by libp2p
 */
export interface WebSocketsComponents {
  /**
   * Creates the transport's loggers
   */
  logger: ComponentLogger

  /**
   * Node-wide events: the listener follows `certificate:provision` and
   * `certificate:renew` to serve `/tls/ws` with an auto-TLS certificate
   */
  events: TypedEventTarget<Libp2pEvents>

  /**
   * Where the dialer and listener metrics are registered, when metrics are
   * enabled
   */
  metrics?: Metrics
}

/**
 * Metrics of the dialer
 */
export interface WebSocketsMetrics {
  /**
   * `libp2p_websockets_dialer_events_total`: dial outcomes (`connect`,
   * `error`, `abort`) and events of outbound connections
   */
  dialerEvents: CounterGroup
}

/**
 * Progress events a dial reports through `onProgress`:
 * `websockets:open-connection` while the WebSocket opens, then the
 * upgrader's events
 */
export type WebSocketsDialEvents =
  OutboundConnectionUpgradeEvents |
  ProgressEvent<'websockets:open-connection'>

/**
 * Where an outbound socket is between dial and a libp2p connection
 */
export type OutboundPhase = typeof OUTBOUND_PHASES[number]

class WebSockets implements Transport<WebSocketsDialEvents>, Startable {
  private readonly log: Logger
  private readonly init: WebSocketsInit
  private readonly components: WebSocketsComponents
  private readonly metrics?: WebSocketsMetrics
  private readonly dialed: SocketRegistry<WebSocketLike, OutboundPhase>

  /**
   * Aborted from the moment the node starts to stop until it starts again:
   * every connection of this run reads it as it closes
   */
  private stopping: AbortController

  constructor (components: WebSocketsComponents, init: WebSocketsInit = {}) {
    this.log = components.logger.forComponent('libp2p:websockets')
    this.components = components
    this.init = init
    this.stopping = new AbortController()
    this.dialed = new SocketRegistry(OUTBOUND_PHASES, {
      terminate: terminateWebSocket,
      onClose: (websocket, onClose) => {
        websocket.addEventListener('close', onClose, { once: true })
      }
    })

    if (components.metrics != null) {
      this.metrics = {
        dialerEvents: components.metrics.registerCounterGroup('libp2p_websockets_dialer_events_total', {
          label: 'event',
          help: 'Total count of WebSockets dialer events by type'
        })
      }

      components.metrics.registerMetricGroup('libp2p_websockets_dialer_sockets', {
        label: 'phase',
        help: 'Sockets the WebSockets dialer holds, by phase from dial to open connection',
        calculate: () => this.dialed.counts()
      })
    }
  }

  readonly [transportSymbol] = true

  readonly [Symbol.toStringTag] = '@libp2p/websockets'

  readonly [serviceCapabilities]: string[] = [
    '@libp2p/transport'
  ]

  start (): void {
    if (this.stopping.signal.aborted) {
      this.stopping = new AbortController()
    }
  }

  /**
   * libp2p closes its connections next: from now on a close does not wait for
   * the peer's closing handshake, as a TCP close does not
   */
  beforeStop (): void {
    this.stopping.abort()
  }

  stop (): void {

  }

  /**
   * By now libp2p has closed its connections: whatever socket is still alive
   * belongs to a peer that did not answer, or to a dial that never finished
   */
  async afterStop (): Promise<void> {
    if (this.dialed.size === 0) {
      return
    }

    const terminated = this.dialed.terminateAll()
    this.log('stopped, terminated outbound sockets by phase %o', terminated)

    // a browser WebSocket cannot be terminated, only closed, and that waits
    // for the peer: do not let node.stop() wait for it
    if (typeof WebSocket.prototype.terminate !== 'function') {
      return
    }

    // `ws` reports a terminated socket closed within a tick or two; the
    // bound only keeps node.stop() bounded should that ever not happen
    const closeTimeout = this.init.closeTimeout ?? CLOSE_TIMEOUT

    await this.dialed.whenEmpty({ signal: AbortSignal.timeout(closeTimeout) })
      .catch(() => {
        this.log.error('%d outbound sockets did not report their close within %dms of being terminated', this.dialed.size, closeTimeout)
      })
  }

  /**
   * Sockets dialed and still alive, by phase
   */
  socketCounts (): Record<OutboundPhase, number> {
    return this.dialed.counts()
  }

  async dial (ma: Multiaddr, options: DialTransportOptions<WebSocketsDialEvents>): Promise<Connection> {
    this.log('dialing %s', ma)

    const { websocket, socket } = await this._connect(ma, options)
    const maConn = webSocketToMaConn({
      ...this.connectionOptions(this.init.outboundSocketInactivityTimeout),
      websocket,
      socket,
      remoteAddr: ma,
      metrics: this.metrics?.dialerEvents,
      direction: 'outbound'
    })
    this.log('new outbound connection %s', maConn.remoteAddr)
    this.dialed.advance(websocket, 'upgrading')

    try {
      const conn = await options.upgrader.upgradeOutbound(maConn, options)
      this.dialed.advance(websocket, 'open')
      this.log('outbound connection %s upgraded', maConn.remoteAddr)

      return conn
    } catch (err: any) {
      maConn.abort(err)
      throw err
    }
  }

  async _connect (ma: Multiaddr, options: DialTransportOptions<WebSocketsDialEvents>): Promise<{ websocket: WebSocketLike, socket?: Socket }> {
    options.signal?.throwIfAborted()

    const uri = toUri(ma)
    this.log('create websocket connection to %s', uri)

    const { websocket, socket } = this.openWebSocket(uri)
    const onAbort = (): void => {
      terminateWebSocket(websocket)
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })

    try {
      options.onProgress?.(new CustomProgressEvent('websockets:open-connection'))
      await pEvent(websocket, 'open', {
        rejectionEvents: ['error', 'close']
      })
    } catch (err: any) {
      terminateWebSocket(websocket)

      if (options.signal?.aborted === true) {
        this.metrics?.dialerEvents.increment({ abort: true })
        throw new AbortError(`Dial to ${uri} was aborted`)
      }

      this.metrics?.dialerEvents.increment({ error: true })
      throw new ConnectionFailedError(`Could not connect to ${uri}: ${err?.message ?? err?.error?.message ?? 'connection closed'}`)
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }

    const tcpSocket = socket()

    if (tcpSocket != null) {
      applySocketOptions(tcpSocket, this.init.dialOpts)
    }

    this.log('connected %s', ma)
    this.metrics?.dialerEvents.increment({ connect: true })

    return { websocket, socket: tcpSocket }
  }

  /**
   * Start a WebSocket handshake, owned by the registry from this moment. In
   * Node.js `socket()` then returns the TCP or TLS socket under it once the
   * upgrade is done; the browser's WebSocket does not expose one
   */
  private openWebSocket (uri: string): { websocket: WebSocketLike, socket(): Socket | undefined } {
    // in browsers this is the native WebSocket, which ignores the options
    const ws = new WebSocket(uri, [], {
      maxPayload: this.init.maxPayload ?? MAX_PAYLOAD,
      // how long `ws` waits for the peer to answer a close frame it sent on a
      // protocol error (bad frame, oversize message): 30 seconds by default
      closeTimeout: this.init.closeTimeout ?? CLOSE_TIMEOUT,
      // `ws` offers permessage-deflate by default; noise ciphertext does not
      // compress, so a server that accepted would only spend CPU on it
      perMessageDeflate: false,
      ...this.init.websocket
    } as ClientOptions)
    const websocket: WebSocketLike = ws
    const isWs = typeof ws.terminate === 'function'
    let socket: Socket | undefined

    websocket.binaryType = isWs ? 'nodebuffer' : 'arraybuffer'
    this.dialed.track(websocket, 'dialing')

    // an 'error' event with no listener would crash the process, and `ws`
    // emits one after a failed or terminated handshake
    websocket.addEventListener('error', (evt) => {
      this.log('websocket error - %e', evt?.error ?? evt)
    })

    if (isWs) {
      ws.once('upgrade', (res: http.IncomingMessage) => {
        socket = res.socket as Socket
        dropOnProtocolError(ws, socket)
      })
    }

    return { websocket, socket: () => socket }
  }

  /**
   * Creates a WebSockets listener. The provided `handler` function will be called
   * anytime a new incoming Connection has been successfully upgraded via
   * `upgrader.upgradeInbound`
   */
  createListener (options: CreateListenerOptions): Listener {
    return createListener({
      logger: this.components.logger,
      events: this.components.events,
      metrics: this.components.metrics
    }, {
      ...this.init,
      ...options,
      connection: this.connectionOptions(this.init.inboundSocketInactivityTimeout)
    })
  }

  /**
   * What every connection is created with, in either direction. The signal is
   * this run's: connections read it as they close, so that a close while the
   * node stops does not wait for the peer
   */
  private connectionOptions (inactivityTimeout?: number): ConnectionOptions {
    return {
      log: this.components.logger.forComponent('libp2p:websockets:connection'),
      maxBufferedAmount: this.init.maxBufferedAmount,
      bufferedAmountPollInterval: this.init.bufferedAmountPollInterval,
      closeTimeout: this.init.closeTimeout,
      inactivityTimeout,
      stopping: this.stopping.signal
    }
  }

  listenFilter (multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter(ma => WebSocketsMatcher.exactMatch(ma) || WebSocketsSecure.exactMatch(ma))
  }

  dialFilter (multiaddrs: Multiaddr[]): Multiaddr[] {
    return this.listenFilter(multiaddrs)
  }
}

/**
 * Create the WebSockets transport: pass the result in `transports`. Node.js
 * can listen and dial, browsers can only dial. Every socket is tracked from
 * the moment it is accepted or dialed, and terminated when the listener closes
 * or the node stops
 */
export function webSockets (init: WebSocketsInit = {}): (components: WebSocketsComponents) => Transport {
  return (components) => {
    return new WebSockets(components, init)
  }
}
