import { InvalidParametersError } from '@libp2p/interface'
import { HANDSHAKE_PHASES, HANDSHAKE_TIMEOUT, INBOUND_PHASES } from './constants.ts'
import { routeByFirstByte } from './first-byte.ts'
import { readProxyHeader } from './read-proxy-header.ts'
import { ServedConnection } from './served-connection.ts'
import { SocketRegistry } from './socket-registry.ts'
import type { ClientAddress, TrustedProxies } from './client-address.ts'
import type { Logger, Metrics, MultiaddrConnection } from '@libp2p/interface'
import type { EventEmitter } from 'node:events'
import type http from 'node:http'
import type net from 'node:net'
import type { Duplex } from 'node:stream'

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
   * A plain HTTP connection the user's handler serves
   */
  served?: ServedConnection

  /**
   * The libp2p connection over the socket, from the `upgrading` phase on
   */
  connection?: MultiaddrConnection
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
   * Proxies whose PROXY headers name the client
   */
  trustedProxies: TrustedProxies

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
}

/**
 * The owner of a listener's sockets, from the moment the net server accepts
 * one (or a user's server hands one over) until it is destroyed: it admits
 * them, reads a trusted proxy's PROXY header, routes each by its first byte to
 * an HTTP(S) server, knows the phase of each, and terminates them all on
 * close. What the servers do with them is followed by `WebSocketUpgrades`;
 * past the WebSocket upgrade, the listener moves them on
 */
export class InboundSockets {
  private readonly init: InboundSocketsInit
  private readonly log: Logger
  private readonly handshakeTimeout: number
  private readonly maxInboundHandshakes: number
  private readonly sockets: SocketRegistry<net.Socket, InboundPhase, InboundRecord>
  private readonly trustedProxies: TrustedProxies
  private readonly proxyProtocol: boolean

  constructor (init: InboundSocketsInit) {
    this.init = init
    this.log = init.log
    this.handshakeTimeout = init.handshakeTimeout ?? HANDSHAKE_TIMEOUT
    this.maxInboundHandshakes = init.maxInboundHandshakes ?? Infinity
    this.trustedProxies = init.trustedProxies
    this.proxyProtocol = init.proxyProtocol ?? false

    if (this.proxyProtocol && this.trustedProxies.size === 0) {
      throw new InvalidParametersError('proxyProtocol needs trustedProxies: the proxies whose PROXY headers to read')
    }

    this.sockets = new SocketRegistry(INBOUND_PHASES, {
      terminate: socket => { socket.destroy() },
      // destroy() closes the file descriptor at once; the 'close' event, and
      // libp2p tearing the connection down in it, only follow
      isDestroyed: socket => socket.destroyed,
      onClose: (socket, onClose) => { socket.once('close', onClose) },
      // the timers end with the socket, so that nothing of ours outlives it
      onRelease: (socket, record) => {
        clearTimeout(record?.deadline)
        record?.served?.stop()
        this.init.countEvent('close')
      }
    })

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

  /**
   * Sockets held right now, by phase
   */
  counts (): Record<InboundPhase, number> {
    return this.sockets.counts()
  }

  /**
   * Sockets that have not completed the WebSocket upgrade yet
   */
  private handshaking (): number {
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
    if (!this.admit(socket, 'accepted', socket.remoteAddress)) {
      return
    }

    const record = this.sockets.dataOf(socket)

    if (record != null && this.proxyProtocol && this.trustedProxies.trusts(socket.remoteAddress)) {
      record.awaitingProxyHeader = true
      readProxyHeader(socket, {
        log: this.log,
        countEvent: this.init.countEvent,
        onHeader: client => {
          record.awaitingProxyHeader = false
          record.proxied = client
        },
        onRest: () => { this.sniff(socket) }
      })
    } else {
      this.sniff(socket)
    }
  }

  /**
   * Own a socket from now on, in `phase`, with the handshake deadline running,
   * unless too many are handshaking already: then it is destroyed. False if
   * it was not admitted
   */
  admit (socket: net.Socket, phase: InboundPhase, remoteAddress: string | undefined): boolean {
    if (this.handshaking() >= this.maxInboundHandshakes) {
      this.log('%d sockets are already handshaking, dropping %s', this.maxInboundHandshakes, remoteAddress)
      this.init.countEvent('handshake_limit')
      socket.destroy()
      return false
    }

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

    return true
  }

  /**
   * Route the socket by its first byte, once it arrives
   */
  private sniff (socket: net.Socket): void {
    routeByFirstByte(socket, {
      log: this.log,
      countEvent: this.init.countEvent,
      proxyProtocol: this.proxyProtocol,
      serverFor: this.init.serverFor,
      onRoute: protocol => { this.sockets.advance(socket, protocol) }
    })
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
   * The phase a socket we accepted is in, if it is still ours
   */
  phaseOf (socket: net.Socket): InboundPhase | undefined {
    return this.sockets.phaseOf(socket)
  }

  /**
   * Who is at the other end of a socket we accepted: the client a trusted
   * proxy named in its PROXY header, else the socket's peer
   */
  peerOf (socket: net.Socket): ClientAddress {
    return this.sockets.dataOf(socket)?.proxied ?? { host: socket.remoteAddress ?? '0.0.0.0', port: socket.remotePort ?? 0 }
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

    // the record lives as long as the connection: it keeps no spent timer
    if (!handshakePhases.has(phase) && record != null) {
      clearTimeout(record.deadline)
      record.deadline = undefined
    }

    // a kept-alive HTTP connection asking for an upgrade is a WebSocket now
    if (phase !== 'request') {
      record?.served?.stop()
    }

    return true
  }

  /**
   * Remember the libp2p connection created over a socket we accepted
   */
  holdConnection (socket: net.Socket, connection: MultiaddrConnection): void {
    const record = this.sockets.dataOf(socket)

    if (record != null) {
      record.connection = connection
    }
  }

  /**
   * The libp2p connections over the sockets held now
   */
  connections (): MultiaddrConnection[] {
    return this.sockets.allData().flatMap(record => record.connection ?? [])
  }

  /**
   * A plain HTTP request arrived for the user's handler: its connection
   * leaves the handshake (and the handshake deadline) for the `request`
   * phase, where a `ServedConnection` bounds its idle time. False if the
   * socket is not ours any more
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

    record.served ??= new ServedConnection(raw, {
      log: this.log,
      idleTimeout: this.init.requestIdleTimeout ?? 0,
      countEvent: this.init.countEvent,
      serving: () => this.sockets.phaseOf(raw) === 'request'
    })
    record.served.serve(res)

    return true
  }

  /**
   * Terminate every socket, whatever its phase, and resolve once every one is
   * gone. In-flight libp2p upgrades are aborted socket by socket, by the work
   * their phase registered
   */
  async terminateAll (): Promise<void> {
    const terminated = this.sockets.terminateAll()
    this.log('terminated sockets by phase %o', terminated)

    await this.sockets.whenEmpty()
  }
}
