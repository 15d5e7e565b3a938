import type { Libp2p } from '@libp2p/interface'
import type { Socket } from 'node:net'

/**
 * Stop (`reading: false`) or start again reading the socket under every
 * connection of the node: a peer that is alive but does not read. What the
 * other end sends, close frames too, waits in the kernel meanwhile.
 *
 * The socket is reached through the connection's MultiaddrConnection, which
 * holds it on our transport and on @libp2p/tcp; upstream's holds none
 */
export function setReading (node: Libp2p, reading: boolean): void {
  for (const connection of node.getConnections()) {
    const socket: Socket | undefined = (connection as any).maConn?.socket

    if (socket == null) {
      throw new Error(`no socket to ${reading ? 'resume' : 'pause'} under the connection to ${connection.remoteAddr}`)
    }

    if (reading) {
      socket.resume()
    } else {
      socket.pause()
    }
  }
}
