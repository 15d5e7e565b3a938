import type { WebSocketLike } from './websocket-to-conn.ts'
import type { Socket } from 'node:net'

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
 * `ws` answers a peer's protocol violation (a bad frame, an oversize message)
 * with a close code and an 'error' event, then reads on, discarding whatever
 * the peer sends, until its close timeout: a 64 MiB message announced in a
 * frame header costs memory all that while. Nothing the peer says matters any
 * more, so once the close frame is out the socket is ended and terminated.
 *
 * Call it where the socket is first known, before any frame is read
 */
export function dropOnProtocolError (websocket: WebSocketLike, socket: Socket): void {
  websocket.addEventListener('error', () => {
    if (!socket.destroyed) {
      socket.end(() => {
        terminateWebSocket(websocket)
      })
    }
  }, { once: true })
}
