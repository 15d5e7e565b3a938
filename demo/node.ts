import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { TRANSPORTS } from './transports.ts'
import type { Report } from './messages.ts'
import type { TransportId } from './transports.ts'
import type { Libp2p, Stream } from '@libp2p/interface'

/**
 * A protocol whose streams stay open until the connection goes: each side
 * answers one byte so the dialer knows both ends hold the stream
 */
export const HOLD_PROTOCOL = '/cleanstop-demo/hold/1.0.0'

const HELLO = Uint8Array.of(1)

// referenced so nothing but the connection decides when they end
const held = new Set<Stream>()

/**
 * A node of the same shape for every transport: noise, yamux, ping (the
 * connection monitor uses it), loopback dials allowed, one held protocol
 */
export async function createNode (transport: TransportId): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: {
      listen: [TRANSPORTS[transport].listen]
    },
    transports: [
      await TRANSPORTS[transport].load()
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      ping: ping()
    },
    connectionGater: {
      denyDialMultiaddr: () => false
    }
  })

  await node.handle(HOLD_PROTOCOL, (stream) => {
    held.add(stream)
    stream.send(HELLO)
  })

  return node
}

/**
 * Open a new connection to `addr` (even if one exists, so both directions get
 * their own) and a held stream on it
 */
export async function dialAndHold (node: Libp2p, addr: string): Promise<void> {
  const connection = await node.dial(multiaddr(addr), { force: true })
  const stream = await connection.newStream(HOLD_PROTOCOL)
  held.add(stream)

  await new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', () => { resolve() }, { once: true })
    stream.addEventListener('close', () => { reject(new Error('held stream closed before the remote answered')) }, { once: true })
  })
}

/**
 * Tell the parent; `then` runs once the message has left the process
 */
export function report (message: Report, then?: () => void): void {
  process.send?.(message, undefined, {}, () => { then?.() })
}

export function errorMessage (err: any): string {
  return err?.stack ?? err?.message ?? String(err)
}
