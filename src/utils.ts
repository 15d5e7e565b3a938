import type { WebSocketLike } from './websocket-to-conn.ts'
import type { ListenOptions, Server, Socket } from 'node:net'
import type { WebSocket } from 'ws'

/**
 * TCP options for the sockets under the WebSockets, named as in
 * `@libp2p/tcp`
 */
export interface WebSocketsSocketOptions {
  /**
   * Disable Nagle's algorithm, so small writes leave at once
   *
   * @default true
   */
  noDelay?: boolean

  /**
   * Send TCP keep-alive probes on idle sockets
   *
   * @default true
   */
  keepAlive?: boolean

  /**
   * Delay in ms before the first keep-alive probe; 0 leaves the system default
   *
   * @default 0
   */
  keepAliveInitialDelay?: number
}

/**
 * The socket options with their defaults filled in
 */
export function socketOptions (options: WebSocketsSocketOptions = {}): Required<WebSocketsSocketOptions> {
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: options.keepAlive ?? true,
    keepAliveInitialDelay: options.keepAliveInitialDelay ?? 0
  }
}

/**
 * `ws` turns Nagle's algorithm off on every socket it takes over, so the
 * options are applied (again) once the WebSocket is open
 */
export function applySocketOptions (socket: Socket, options?: WebSocketsSocketOptions): void {
  const { noDelay, keepAlive, keepAliveInitialDelay } = socketOptions(options)
  socket.setNoDelay(noDelay)
  socket.setKeepAlive(keepAlive, keepAliveInitialDelay)
}

/**
 * Destroy a WebSocket's connection at once, without a closing handshake.
 *
 * `ws` can do that in every state, including while connecting. A browser
 * WebSocket cannot, and refuses the reserved close codes (1006), so the most
 * we can do there is start a normal close and let the browser finish it
 */
export function terminateWebSocket (websocket: WebSocketLike): void {
  if (typeof websocket.terminate === 'function') {
    websocket.terminate()
    return
  }

  try {
    websocket.close()
  } catch {
    // already closed
  }
}

/**
 * End a TCP connection with an RST, as `@libp2p/tcp` does on abort: the
 * kernel then drops whatever is still unsent, where a FIN would have it keep
 * that (up to the send buffer, megabytes) for minutes, retrying towards a peer
 * that may have vanished. A TLS socket's handle wraps the TCP one and cannot
 * be reset: it is destroyed
 */
export function resetSocket (socket: Socket): void {
  if (socket.destroyed) {
    return
  }

  // once the socket has begun to end (our FIN, or Node.js answering the
  // peer's), libuv refuses the RST, and the socket would then never close
  if (socket.writableEnded) {
    socket.destroy()
    return
  }

  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/**
 * `ws` answers a peer's protocol violation (a bad frame, an oversize message)
 * with a close code and an 'error' event, then reads on, discarding whatever
 * the peer sends, until its close timeout: a 64 MiB message announced in a
 * frame header costs memory all that while. Nothing the peer says matters any
 * more, so once the close frame is out the socket is ended and terminated.
 *
 * Call it where the socket is first known, before any frame is read
 */
export function dropOnProtocolError (websocket: WebSocket, socket: Socket): void {
  websocket.once('error', () => {
    if (!socket.destroyed) {
      socket.end(() => {
        websocket.terminate()
      })
    }
  })
}

/**
 * Listen, and wait until the server listens or is closed: a server closed
 * before it listens never emits 'listening', and never will listen. Rejects
 * with the error binding the address gave
 */
export async function listenOn (server: Server, options: ListenOptions): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onListening = (): void => {
      removeListeners()
      resolve()
    }
    const onError = (err: Error): void => {
      removeListeners()
      reject(err)
    }
    const removeListeners = (): void => {
      server.removeListener('listening', onListening)
      server.removeListener('close', onListening)
      server.removeListener('error', onError)
    }

    server.addListener('listening', onListening)
    server.addListener('close', onListening)
    server.addListener('error', onError)
    server.listen(options)
  })
}

/**
 * Stop listening, and resolve once the server has closed. A server that never
 * listened is closed as well
 */
export async function closeServer (server: Server): Promise<void> {
  await new Promise<void>(resolve => {
    // calls back with ERR_SERVER_NOT_RUNNING if it never listened
    server.close(() => { resolve() })
  })
}
