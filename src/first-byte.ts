import { startsWithProxySignature } from './proxy-protocol.ts'
import type { Logger } from '@libp2p/interface'
import type { EventEmitter } from 'node:events'
import type net from 'node:net'

/**
 * What routing a socket by its first byte needs of the inbound owner
 */
export interface RouteByFirstByteInit {
  log: Logger

  /**
   * Count an event in the listener's metrics
   */
  countEvent(event: string): void

  /**
   * Whether PROXY headers are read on this listener: there, a socket that
   * starts with one now is forging it
   */
  proxyProtocol: boolean

  /**
   * The server for sockets whose first byte starts a TLS handshake or an
   * HTTP request, if the listener serves that now
   */
  serverFor(protocol: 'tls' | 'http'): EventEmitter | undefined

  /**
   * The socket is about to be handed to the server for `protocol`
   */
  onRoute(protocol: 'tls' | 'http'): void
}

/**
 * Hand `socket` to the HTTP or HTTPS server its first byte asks for, once that
 * byte arrives, or destroy it: when it closes before sending anything, sends
 * what the listener does not serve, or sends a PROXY header it may not send
 */
export function routeByFirstByte (socket: net.Socket, init: RouteByFirstByteInit): void {
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
    if (init.proxyProtocol && startsWithProxySignature(chunk)) {
      init.log('%s sent a PROXY header it may not send, destroying socket', socket.remoteAddress)
      init.countEvent('proxy_untrusted')
      socket.destroy()
      return
    }

    // removing a 'readable' listener only takes effect on the next tick;
    // until then the stream will not flow, and the server we hand the socket
    // to needs it to
    process.nextTick(() => {
      route(socket, chunk[0], init)
    })
  })
}

function route (socket: net.Socket, firstByte: number, init: RouteByFirstByteInit): void {
  if (socket.destroyed) {
    return
  }

  // a TLS record starts with a content type byte below 32, an HTTP request
  // with a printable ASCII method name
  const protocol = firstByte < 32 || firstByte >= 127 ? 'tls' : 'http'
  const server = init.serverFor(protocol)

  if (server == null) {
    init.log('%s sent %s but this listener does not serve it, destroying socket', socket.remoteAddress, protocol === 'tls' ? 'TLS' : 'plain HTTP')
    init.countEvent(protocol === 'tls' ? 'unexpected_tls' : 'unexpected_plaintext')
    socket.destroy()
    return
  }

  init.onRoute(protocol)
  server.emit('connection', socket)
}
