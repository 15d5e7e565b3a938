import { ListenError } from '@libp2p/interface'
import { getThinWaistAddresses, ipPortToMultiaddr as toMultiaddr } from '@libp2p/utils'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import type { Multiaddr } from '@multiformats/multiaddr'
import type http from 'node:http'
import type https from 'node:https'
import type { Duplex } from 'node:stream'

/**
 * The user's servers a listener is attached to: one listener each, or every
 * upgrade would be taken twice
 */
const attached = new WeakSet<http.Server>()

/**
 * What an attached server needs of its listener
 */
export interface AttachedServerInit {
  /**
   * Take only upgrade requests for this path
   *
   * @default undefined (every upgrade request)
   */
  upgradePath?: string

  /**
   * Take a WebSocket upgrade request the server received
   */
  onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void
}

/**
 * A user's server, which listens already, whose WebSocket upgrade requests a
 * listener takes instead of listening itself. Its other requests and
 * connections stay the user's
 */
export class AttachedServer {
  /**
   * The server's address as `host:port`, which labels the listener's metrics
   */
  readonly addr: string
  private readonly server: http.Server | https.Server
  private readonly multiaddr: Multiaddr
  private readonly protocol: '/ws' | '/tls/ws'
  private readonly upgradePath?: string
  private readonly onUpgrade: AttachedServerInit['onUpgrade']

  /**
   * Attach to `server`, which must listen on the host and port of `ma`, a
   * `/ws` address for an HTTP server, `/tls/ws` for an HTTPS one. Throws a
   * `ListenError` if it does not, or if another listener is attached to it
   */
  constructor (server: http.Server | https.Server, ma: Multiaddr, init: AttachedServerInit) {
    const address = server.address()
    const secure = 'setSecureContext' in server

    if (!server.listening || address == null || typeof address === 'string') {
      throw new ListenError('The server to attach to must listen on a TCP port already')
    }

    if (secure ? !WebSocketsSecure.exactMatch(ma) : !WebSockets.exactMatch(ma)) {
      throw new ListenError(`The server to attach to serves ${secure ? '/tls/ws' : '/ws'}, not ${ma.toString()}`)
    }

    if (attached.has(server)) {
      throw new ListenError('Another listener is attached to this server already: listen on one address only')
    }

    this.server = server
    this.protocol = secure ? '/tls/ws' : '/ws'
    this.addr = `${address.address}:${address.port}`
    this.multiaddr = toMultiaddr(address.address, address.port)
    this.upgradePath = init.upgradePath
    this.onUpgrade = init.onUpgrade
    this.onServerUpgrade = this.onServerUpgrade.bind(this)

    attached.add(server)
    server.on('upgrade', this.onServerUpgrade)
  }

  /**
   * The server's address, each interface's if it listens on all
   */
  getAddrs (): Multiaddr[] {
    const address = this.server.address()

    if (address == null || typeof address === 'string') {
      return []
    }

    return getThinWaistAddresses(this.multiaddr, address.port).map(ma => ma.encapsulate(this.protocol))
  }

  /**
   * Take no more upgrade requests; the server, and the connections it holds,
   * stay as they are
   */
  detach (): void {
    this.server.removeListener('upgrade', this.onServerUpgrade)
    attached.delete(this.server)
  }

  private onServerUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.upgradePath != null && new URL(req.url ?? '/', 'http://localhost').pathname !== this.upgradePath) {
      // another upgrade handler of the user's may take it
      return
    }

    this.onUpgrade(req, socket, head)
  }
}
