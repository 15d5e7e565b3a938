/**
 * A browser's WebSocket exposes no socket to write frames to: every message
 * goes through `send()`, and nothing calls this
 */
export function writeDataFrame (): never {
  throw new Error('data frames are written to a socket only in Node.js')
}
