/**
 * What the page (page.ts, bundled for the browser) offers the runner. The
 * page holds one libp2p node at a time, with at most one connection (to the
 * far side) and one held echo stream on it
 */
export type TransportName = 'ours' | 'upstream'

export interface StartOptions {
  transport: TransportName

  /**
   * The transport's `maxBufferedAmount`
   */
  maxBufferedAmount?: number
}

export interface EchoResult {
  /**
   * Every byte came back, in order
   */
  intact: boolean
  receivedBytes: number
  ms: number

  /**
   * How many times writing went to the `bufferedAmount` poll because the
   * WebSocket held `maxBufferedAmount` or more
   */
  polls: number

  /**
   * A poll timer still pending once the echo is over
   */
  pollTimerLeft: boolean
}

export interface PageApi {
  /**
   * Create and start the node; resolves with its peer id
   */
  start(options: StartOptions): Promise<string>

  /**
   * Dial the far side; resolves with the peer id of the connection's remote
   */
  dial(addr: string): Promise<string>

  /**
   * Send `bytes` pseudo-random bytes on a new echo stream and read them back
   */
  echo(bytes: number): Promise<EchoResult>

  /**
   * Open an echo stream, exchange one small message and leave it open
   */
  holdStream(): Promise<void>

  /**
   * Send `bytes` on the held stream, not waiting for anything back
   */
  write(bytes: number): Promise<void>

  /**
   * `connection.close()`; resolves with the ms it took
   */
  close(): Promise<number>

  /**
   * `connection.abort()`: a reset
   */
  abort(): Promise<void>

  /**
   * `node.stop()`; resolves with the ms it took
   */
  stop(): Promise<number>

  /**
   * Stop the node if there is one, whatever state a test left it in
   */
  reset(): Promise<void>
}

/**
 * Where the page puts its API for the runner's `page.evaluate`
 */
export const PAGE_API = 'cleanstopBrowserSuite'
