/**
 * The browser's own WebSocket. `ws` has no browser build, so a bundle that
 * reached it would hold an empty stub instead of a constructor
 */
export default globalThis.WebSocket
