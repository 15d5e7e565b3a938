import type { Socket } from 'node:net'

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
 * `ws` turns Nagle's algorithm off on every socket it takes over, so the
 * options are applied (again) once the WebSocket is open
 */
export function applySocketOptions (socket: Socket, options: WebSocketsSocketOptions = {}): void {
  socket.setNoDelay(options.noDelay ?? true)
  socket.setKeepAlive(options.keepAlive ?? true, options.keepAliveInitialDelay ?? 0)
}
