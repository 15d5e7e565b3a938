import { WebSocketServer } from 'ws'
import { CLOSE_TIMEOUT, HANDSHAKE_PHASES, HANDSHAKE_TIMEOUT, INBOUND_PHASES, MAX_PAYLOAD } from './constants.ts'
import { SocketRegistry } from './socket-registry.ts'
import type { Logger, Metrics } from '@libp2p/interface'
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
  onWebSocket(websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket): void
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
  private readonly sockets: SocketRegistry<net.Socket, InboundPhase, ReturnType<typeof setTimeout>>
  private readonly wsServer: WebSocketServer

  constructor (init: InboundSocketsInit) {
    this.init = init
    this.log = init.log
    this.handshakeTimeout = init.handshakeTimeout ?? HANDSHAKE_TIMEOUT
    this.maxInboundHandshakes = init.maxInboundHandshakes ?? Infinity
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
      onRelease: (socket, deadline) => {
        clearTimeout(deadline)
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

    this.sockets.track(socket, 'accepted', setTimeout(() => {
      this.log('no WebSocket upgrade within %dms in phase %s, destroying socket', this.handshakeTimeout, this.sockets.phaseOf(socket))
      this.init.countEvent('handshake_timeout')
      socket.destroy()
    }, this.handshakeTimeout))

    socket.on('error', (err) => {
      this.log('socket error - %e', err)
      this.init.countEvent('error')
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
    if (!this.sockets.advance(socket, phase, onTerminate)) {
      return false
    }

    if (!handshakePhases.has(phase)) {
      clearTimeout(this.sockets.dataOf(socket))
    }

    return true
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

    this.advance(raw, 'websocket')
    this.wsServer.handleUpgrade(req, socket, head, (websocket) => {
      this.init.onWebSocket(websocket, req, raw)
    })
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
