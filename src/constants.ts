/**
 * Stop writing once this many bytes wait in the WebSocket's send buffer. Large
 * enough to keep a fast link busy, small enough that a peer that stops reading
 * cannot pin much memory
 */
export const MAX_BUFFERED_AMOUNT = 4 * 1024 * 1024

/**
 * Where no drain event is available (the browser WebSocket), how often to look
 * at `bufferedAmount` while writing is paused
 */
export const BUFFERED_AMOUNT_POLL_INTERVAL = 10

/**
 * How long a graceful close waits for the peer to answer our close frame
 * before the socket is terminated. A healthy peer answers within one round
 * trip, so this is several times the worst round trips seen on real links
 */
export const CLOSE_TIMEOUT = 2_000

/**
 * How long an inbound socket may take from accept to a completed WebSocket
 * upgrade (first byte, TLS, HTTP headers). Other libp2p implementations bound
 * the whole inbound handshake at 3 to 15 seconds
 */
export const HANDSHAKE_TIMEOUT = 10_000

/**
 * Largest incoming WebSocket message accepted. libp2p with noise never sends
 * a message larger than one noise frame (65,535 bytes plus a 2 byte length
 * prefix); this leaves room for other encrypters while keeping `ws`'s 100 MiB
 * default from letting one frame pin that much memory
 */
export const MAX_PAYLOAD = 1024 * 1024

/**
 * Phases of an inbound socket before its WebSocket upgrade is complete: the
 * handshake deadline and `maxInboundHandshakes` cover these
 */
export const HANDSHAKE_PHASES = ['accepted', 'tls', 'http', 'websocket'] as const

/**
 * Phases of an inbound socket from accept to a libp2p connection, in the
 * order a socket moves through them. `request`: a plain HTTP connection the
 * user's request handler serves (it may still ask for an upgrade later), so
 * not a handshake
 */
export const INBOUND_PHASES = ['accepted', 'tls', 'http', 'request', 'websocket', 'upgrading', 'open'] as const

/**
 * Largest PROXY v2 address block, TLVs included, that a trusted proxy may
 * send. The addresses take 36 bytes at most; the TLVs cloud load balancers and
 * HAProxy add (endpoint ids, ALPN, TLS details) take some hundreds. The
 * protocol allows 65,535, which a socket still handshaking should not pin
 */
export const PROXY_V2_MAX_LENGTH = 4096

/**
 * Phases of an outbound socket from dial to a libp2p connection, in the order
 * a socket moves through them
 */
export const OUTBOUND_PHASES = ['dialing', 'upgrading', 'open'] as const

/**
 * How long a plain HTTP connection served by the user's request handler may
 * go without traffic, unless `inboundSocketInactivityTimeout` says otherwise:
 * the same default as a libp2p connection's inactivity timeout
 */
export const REQUEST_IDLE_TIMEOUT = 120_000
