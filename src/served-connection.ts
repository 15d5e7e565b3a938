import type { Logger } from '@libp2p/interface'
import type http from 'node:http'
import type net from 'node:net'

/**
 * What a served connection needs of the inbound owner
 */
export interface ServedConnectionInit {
  log: Logger

  /**
   * How long in ms the connection may stay idle between responses, 0 for no
   * limit of ours
   */
  idleTimeout: number

  /**
   * Count an event in the listener's metrics
   */
  countEvent(event: string): void

  /**
   * Whether the socket is still in the `request` phase: one that asked for a
   * WebSocket upgrade since is not idle
   */
  serving(): boolean
}

/**
 * A plain HTTP connection whose requests the user's handler serves: it counts
 * the requests in flight and, once the last response is done, destroys the
 * socket if no request follows within `idleTimeout`. The HTTP server's
 * `keepAliveTimeout` may close it sooner, and the listener's close terminates
 * it whatever this says
 */
export class ServedConnection {
  private readonly socket: net.Socket
  private readonly init: ServedConnectionInit
  private requests: number
  private idle?: ReturnType<typeof setTimeout>

  constructor (socket: net.Socket, init: ServedConnectionInit) {
    this.socket = socket
    this.init = init
    this.requests = 0
  }

  /**
   * A request arrived on the connection, to be answered with `res`
   */
  serve (res: http.ServerResponse): void {
    // not while a response is being written, however long it takes
    this.stop()
    this.requests++

    res.once('close', () => {
      this.requests--

      if (this.requests === 0 && this.init.idleTimeout > 0 && this.init.serving()) {
        this.idle = setTimeout(() => {
          this.init.log('HTTP connection idle for %dms, destroying socket', this.init.idleTimeout)
          this.init.countEvent('request_idle')
          this.socket.destroy()
        }, this.init.idleTimeout)
      }
    })
  }

  /**
   * Stop the idle timer: the socket is gone, or a WebSocket now
   */
  stop (): void {
    clearTimeout(this.idle)
  }
}
