import { WebSocket } from 'ws'

/**
 * The WebSocket class dials use. In Node.js it is `ws`'s: it can be
 * terminated, exposes the socket under it and takes TLS and payload options.
 * Browsers get `web-socket.browser.ts` instead, through the `browser` field of
 * package.json, which every mainstream bundler reads
 */
export default WebSocket
