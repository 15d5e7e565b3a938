import { ipPortToMultiaddr as toMultiaddr } from '@libp2p/utils'
import { applySocketOptions, dropOnProtocolError } from './utils.ts'
import { webSocketToMaConn } from './websocket-to-conn.ts'
import type { ClientAddress } from './client-address.ts'
import type { InboundSockets } from './inbound-sockets.ts'
import type { WebSocketsSocketOptions } from './utils.ts'
import type { WebSocketMultiaddrConnectionInit } from './websocket-to-conn.ts'
import type { ComponentLogger, CounterGroup, Logger, MultiaddrConnection, Upgrader } from '@libp2p/interface'
import type http from 'node:http'
import type net from 'node:net'
import type tls from 'node:tls'
import type { WebSocket } from 'ws'

/**
 * What turning inbound WebSockets into libp2p connections needs of the
 * listener, handed over rather than reached for
 */
export interface InboundConnectionsInit {
  logger: ComponentLogger
  log: Logger
  upgrader: Upgrader

  /**
   * The owner of the sockets under the WebSockets
   */
  sockets: InboundSockets

  /**
   * What every connection is created with
   */
  connection?: Partial<WebSocketMultiaddrConnectionInit>

  /**
   * Options for the sockets of inbound connections
   */
  listenOpts?: WebSocketsSocketOptions

  /**
   * The listener's event and error counters
   */
  metrics: { events?: CounterGroup, errors?: CounterGroup }

  /**
   * The listener's address, which labels its metrics
   */
  address(): string | undefined
}

/**
 * Turns a WebSocket whose upgrade is complete into a `MultiaddrConnection`
 * for the client it is for, and has libp2p upgrade it: its socket moves to
 * `upgrading`, where terminating it aborts the upgrade, then to `open`
 */
export class InboundConnections {
  private readonly init: InboundConnectionsInit

  constructor (init: InboundConnectionsInit) {
    this.init = init
  }

  /**
   * Upgrade `websocket`, over `raw`, the socket we accepted, unless that
   * socket has closed in the meantime: then the WebSocket is terminated
   */
  upgrade (websocket: WebSocket, req: http.IncomingMessage, raw: net.Socket, client: ClientAddress): void {
    const { log, metrics } = this.init
    const controller = new AbortController()

    if (raw.destroyed || !this.init.sockets.advance(raw, 'upgrading', () => { controller.abort() })) {
      websocket.terminate()
      return
    }

    // the HTTPS server hands us the TLS socket wrapping the one we accepted
    const socket = req.socket as net.Socket
    dropOnProtocolError(websocket, socket)
    // behind a proxy that terminates TLS, what the client used is what the
    // proxy said it used
    const protocol = (client.secure ?? (socket as tls.TLSSocket).encrypted === true) ? '/tls/ws' : '/ws'
    applySocketOptions(socket, this.init.listenOpts)

    const maConn = webSocketToMaConn({
      log: this.init.logger.forComponent('libp2p:websockets:connection'),
      ...this.init.connection,
      websocket,
      socket,
      remoteAddr: toMultiaddr(client.host, client.port).encapsulate(protocol),
      metrics: metrics.events,
      metricPrefix: `${this.init.address()} `,
      direction: 'inbound'
    })

    log('new inbound connection %s from %s:%d', maConn.remoteAddr, raw.remoteAddress, raw.remotePort)
    this.init.sockets.holdConnection(raw, maConn)

    this.init.upgrader.upgradeInbound(maConn, {
      signal: controller.signal
    })
      .then(() => {
        this.init.sockets.advance(raw, 'open')
      }, (err) => {
        log.error('inbound connection failed to upgrade - %e', err)
        metrics.errors?.increment({ [`${this.init.address()} inbound_upgrade`]: true })
        maConn.abort(err)
      })
  }

  /**
   * Resolves once each of `connections` has closed. Once their sockets are
   * terminated, that is a matter of ticks: their WebSockets see the sockets
   * close, and the connections see their WebSockets close. Should one not
   * report its close within `ms` all the same, it is aborted, so that the
   * listener's close() stays bounded whatever happens below it
   */
  async whenClosed (connections: MultiaddrConnection[], ms: number): Promise<void> {
    const closing = connections.filter(maConn => maConn.status === 'open' || maConn.status === 'closing')

    if (closing.length === 0) {
      return
    }

    let timer: ReturnType<typeof setTimeout> | undefined
    const closed = Promise.all(closing.map(async maConn => new Promise<void>(resolve => {
      maConn.addEventListener('close', () => { resolve() }, { once: true })
    })))
    const expired = new Promise<true>(resolve => {
      timer = setTimeout(resolve, ms, true)
    })
    const timedOut = await Promise.race([closed.then(() => false), expired])
    clearTimeout(timer)

    if (timedOut) {
      const left = closing.filter(maConn => maConn.status === 'open' || maConn.status === 'closing')
      this.init.log.error('%d inbound connections did not report their close within %dms of their sockets being terminated', left.length, ms)

      for (const maConn of left) {
        maConn.abort(new Error('The listener closed'))
      }
    }
  }
}
