import { ProxyHeaderError, ProxyHeaderReader } from './proxy-protocol.ts'
import type { ClientAddress } from './client-address.ts'
import type { Logger } from '@libp2p/interface'
import type net from 'node:net'

/**
 * What reading a PROXY header needs of the inbound owner, and how it hears
 * of the outcome
 */
export interface ReadProxyHeaderInit {
  log: Logger

  /**
   * Count an event in the listener's metrics: `proxy_<reason>` where the
   * header fails
   */
  countEvent(event: string): void

  /**
   * The header is read: `client` is the client it names, undefined where the
   * connection is the proxy's own
   */
  onHeader(client: ClientAddress | undefined): void

  /**
   * Called on the tick after `onHeader`, once a new reader of the socket is
   * told of the bytes that followed the header
   */
  onRest(): void
}

/**
 * Read the PROXY header a trusted proxy sends first on `socket`, as its bytes
 * arrive, and put back whatever follows it. Any fault in the header destroys
 * the socket, logged and counted. The wait is bounded by the caller's
 * deadline: the handshake's, which covers the header too
 */
export function readProxyHeader (socket: net.Socket, init: ReadProxyHeaderInit): void {
  const reader = new ProxyHeaderReader()
  const proxy = socket.remoteAddress

  const stop = (): void => {
    socket.removeListener('readable', onReadable)
    socket.removeListener('end', onEnd)
  }
  const fail = (reason: string, err: Error): void => {
    stop()
    init.log('invalid PROXY header from trusted proxy %s, destroying socket - %e', proxy, err)
    init.countEvent(`proxy_${reason}`)
    socket.destroy()
  }
  const onEnd = (): void => {
    fail('truncated', new ProxyHeaderError('malformed', 'The connection ended before the PROXY header did'))
  }
  const onReadable = (): void => {
    let chunk: Buffer | null

    while (!socket.destroyed && (chunk = socket.read()) != null) {
      let result: ReturnType<ProxyHeaderReader['push']>

      try {
        result = reader.push(chunk)
      } catch (err: any) {
        fail(err instanceof ProxyHeaderError ? err.reason : 'malformed', err)
        return
      }

      if (result == null) {
        continue
      }

      stop()
      init.log('PROXY v%d header from trusted proxy %s: client %s', result.header.version, proxy,
        result.header.source == null ? 'is the proxy itself' : `${result.header.source.host}:${result.header.source.port}`)
      init.onHeader(result.header.source)

      if (result.rest.length > 0) {
        socket.unshift(result.rest)
      }

      // once the listener above is gone (next tick), a new one is told of
      // the bytes already buffered
      process.nextTick(init.onRest)
      return
    }
  }

  socket.on('readable', onReadable)
  socket.once('end', onEnd)
}
