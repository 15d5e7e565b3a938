import { WebSocketServer } from 'ws'
import { CLOSE_TIMEOUT, MAX_PAYLOAD } from './constants.ts'
import type { ClientAddress, TrustedProxies } from './client-address.ts'
import type { InboundSockets } from './inbound-sockets.ts'
import type { CounterGroup, Logger, Metrics } from '@libp2p/interface'
import type { EventEmitter } from 'node:events'
import type http from 'node:http'
import type net from 'node:net'
import type { Duplex } from 'node:stream'
import type tls from 'node:tls'
import type { ServerOptions, WebSocket } from 'ws'

/**
 * What the WebSocket upgrades need of their listener, handed over rather than
 * reached for
 */
export interface WebSocketUpgradesInit {
  log: Logger
  metrics?: Metrics

  /**
   * The owner of the sockets whose upgrades these are
   */
  sockets: InboundSockets

  /**
   * Proxies whose forwarding headers name the client
   */
  trustedProxies: TrustedProxies

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
   * Take a WebSocket whose upgrade is complete, over `raw`, the socket we
   * accepted, for `client`
   */
  onWebSocket(websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket, client: ClientAddress): void
}

/**
 * Follows the inbound sockets through the HTTP(S) servers they were handed
 * to, and `ws`, up to an open WebSocket: moves them on through the `tls`,
 * `http` and `websocket` phases, destroys those whose TLS handshake or request
 * fails, and names the client of each upgrade request
 */
export class WebSocketUpgrades {
  private readonly init: WebSocketUpgradesInit
  private readonly log: Logger
  private readonly sockets: InboundSockets
  private readonly wsServer: WebSocketServer
  private readonly proxied?: CounterGroup

  constructor (init: WebSocketUpgradesInit) {
    this.init = init
    this.log = init.log
    this.sockets = init.sockets

    this.onUpgrade = this.onUpgrade.bind(this)
    this.onSecureConnection = this.onSecureConnection.bind(this)
    this.onTLSClientError = this.onTLSClientError.bind(this)
    this.onClientError = this.onClientError.bind(this)

    this.wsServer = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: init.maxPayload ?? MAX_PAYLOAD,
      // how long `ws` waits for the peer to answer a close frame it sent on a
      // protocol error (bad frame, oversize message): 30 seconds by default
      closeTimeout: init.closeTimeout ?? CLOSE_TIMEOUT
    } as ServerOptions)

    // labelled by the proxy's address: there are only as many as the
    // operator trusts
    this.proxied = init.metrics?.registerCounterGroup('libp2p_websockets_listener_proxied_total', {
      label: 'proxy',
      help: 'WebSocket upgrades that arrived through a trusted proxy, by listener and proxy address'
    })
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
   * Take the WebSocket upgrade request a user's HTTP(S) server received, if
   * the owner admits its socket
   */
  adopt (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.sockets.admit(socket as net.Socket, 'websocket', req.socket.remoteAddress)) {
      this.onUpgrade(req, socket, head)
    }
  }

  /**
   * Refuse upgrades from now on: the listener is closing
   */
  close (): void {
    this.wsServer.close()
  }

  private onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const raw = this.sockets.rawSocketOf(socket)

    if (raw == null) {
      socket.destroy()
      return
    }

    if (this.sockets.phaseOf(raw) !== 'websocket') {
      this.sockets.advance(raw, 'websocket')
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
    const peer = this.sockets.peerOf(raw)

    if (!this.init.trustedProxies.trusts(raw.remoteAddress)) {
      return peer
    }

    const client = this.init.trustedProxies.clientOf(peer, req.headers)
    this.log('upgrade through trusted proxy %s:%d for client %s:%d', raw.remoteAddress, raw.remotePort, client.host, client.port)
    this.proxied?.increment({ [`${this.init.address()} ${raw.remoteAddress}`]: true })

    return client
  }

  private onSecureConnection (socket: tls.TLSSocket): void {
    const raw = this.sockets.rawSocketOf(socket)

    if (raw != null) {
      this.sockets.advance(raw, 'http')
    }
  }

  private onTLSClientError (err: Error, socket: tls.TLSSocket): void {
    this.log('TLS client error - %e', err)
    this.init.countEvent('tls_error')
    socket.destroy()
    this.sockets.rawSocketOf(socket)?.destroy()
  }

  private onClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
    this.log('HTTP client error - %e', err)
    this.init.countEvent('http_error')

    // a request the server could not read gets the status Node.js answers it
    // with when nobody listens for 'clientError': a peer that reset the
    // connection gets nothing, nor does one whose socket carries a response
    // already (a kept-alive connection the user's handler serves)
    if (err.code !== 'ECONNRESET' && socket.writable && (socket as net.Socket).bytesWritten === 0) {
      socket.write(`HTTP/1.1 ${clientErrorStatus(err.code)}\r\nConnection: close\r\n\r\n`)
    }

    socket.destroy()
  }
}

/**
 * The status line for a request the HTTP server could not read, as Node.js
 * chooses it
 */
function clientErrorStatus (code?: string): string {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return '431 Request Header Fields Too Large'
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return '413 Payload Too Large'
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return '408 Request Timeout'
    default:
      return '400 Bad Request'
  }
}
