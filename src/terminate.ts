import type { WebSocketLike } from './websocket-to-conn.ts'

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
