import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { webSockets as upstreamWebSockets } from '@libp2p/websockets'
import { createLibp2p } from 'libp2p'
import { webSockets } from '../src/index.ts'
import type { Libp2p, Transport } from '@libp2p/interface'

/**
 * The transports compared, in the order every round runs them. The first two
 * are the baselines each figure is divided by
 */
export const TRANSPORTS = ['upstream', 'ours', 'tcp'] as const

export type TransportName = typeof TRANSPORTS[number]

export const LABELS: Record<TransportName, string> = {
  upstream: '@libp2p/websockets',
  ours: '@cleanstop/libp2p-websockets',
  tcp: '@libp2p/tcp'
}

const FACTORIES: Record<TransportName, () => (components: any) => Transport> = {
  upstream: () => upstreamWebSockets(),
  ours: () => webSockets(),
  tcp: () => tcp()
}

const LISTEN: Record<TransportName, string> = {
  upstream: '/ip4/127.0.0.1/tcp/0/ws',
  ours: '/ip4/127.0.0.1/tcp/0/ws',
  tcp: '/ip4/127.0.0.1/tcp/0'
}

export interface BenchNodeOptions {
  listen?: boolean
}

/**
 * A libp2p 3 node with noise and yamux over one transport, each transport with
 * its defaults
 */
export async function createBenchNode (name: TransportName, options: BenchNodeOptions = {}): Promise<Libp2p> {
  return createLibp2p({
    addresses: {
      listen: options.listen === true ? [LISTEN[name]] : []
    },
    transports: [FACTORIES[name]()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      // loopback addresses are denied by default
      denyDialMultiaddr: () => false
    },
    connectionManager: {
      // the defaults (300 connections, 5 per second and 10 pending per host)
      // would refuse most of the connections these benchmarks open, all from
      // 127.0.0.1
      maxConnections: 100_000,
      inboundConnectionThreshold: 100_000,
      maxIncomingPendingConnections: 1_000
    },
    connectionMonitor: {
      // its ping every 10 s per connection is traffic, and idle connections
      // must stay idle while memory is measured
      enabled: false
    }
  })
}

/**
 * Listeners the node's transport manager holds: libp2p does not expose them
 */
export function listenersOf (node: Libp2p): Array<{ close(): Promise<void> }> {
  return (node as any).components.transportManager.getListeners()
}
