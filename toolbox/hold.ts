import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, Stream } from '@libp2p/interface'

/**
 * A protocol whose streams stay open until the connection goes. The listener
 * answers one byte, so that the dialer knows both ends hold the stream
 */
export const HOLD_PROTOCOL = '/cleanstop/hold/1.0.0'

const HELLO = Uint8Array.of(1)

// referenced, so that nothing but the connection decides when they end
const held = new Set<Stream>()

export async function handleHold (node: Libp2p): Promise<void> {
  await node.handle(HOLD_PROTOCOL, (stream) => {
    held.add(stream)
    stream.send(HELLO)
  })
}

/**
 * Open a new connection to `addr` (even if one exists, so that both
 * directions get their own) and a held stream on it
 */
export async function hold (node: Libp2p, addr: string): Promise<void> {
  const connection = await node.dial(multiaddr(addr), { force: true })
  const stream = await connection.newStream(HOLD_PROTOCOL)
  held.add(stream)

  await new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', () => { resolve() }, { once: true })
    stream.addEventListener('close', () => { reject(new Error('held stream closed before the remote answered')) }, { once: true })
  })
}
