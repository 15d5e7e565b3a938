import net from 'node:net'

/**
 * A server that accepts TCP connections, reads whatever comes and never writes
 * a byte: a dial to it connects and then waits forever for an answer
 */
export interface SilentServer {
  port: number

  /**
   * Resolves once a client has connected and sent something, i.e. a dial is
   * past connecting and waiting for the answer that never comes
   */
  contacted: Promise<void>

  close(): void
}

export async function silentServer (): Promise<SilentServer> {
  const sockets = new Set<net.Socket>()
  const contacted = Promise.withResolvers<void>()
  const server = net.createServer(socket => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => { sockets.delete(socket) })
    socket.once('data', () => { contacted.resolve() })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })

  const address = server.address() as net.AddressInfo

  return {
    port: address.port,
    contacted: contacted.promise,
    close: () => {
      server.close()

      for (const socket of sockets) {
        socket.destroy()
      }
    }
  }
}

/**
 * A client that connects and sends nothing: to the listener it is a socket
 * stuck before its first byte
 */
export async function silentClient (port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port })

  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })

  // the node closing it, or failing to, is what is measured: not an error
  socket.on('error', () => {})

  return socket
}
