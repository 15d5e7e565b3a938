import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { createLibp2p } from 'libp2p'
import { letGo } from './supervised.ts'
import { TRANSPORTS } from './transports.ts'
import type { TransportId } from './transports.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { Libp2p, ServiceMap, Transport } from '@libp2p/interface'
import type { Libp2pOptions, ServiceFactoryMap } from 'libp2p'

export interface NodeOptions<S extends ServiceMap = ServiceMap> {
  /**
   * A transport of the table, or a transport factory of the caller's own
   *
   * @default 'ours'
   */
  transport?: TransportId | ((components: any) => Transport)

  /**
   * Options of a transport of the table
   *
   * @default {}
   */
  init?: WebSocketsInit

  /**
   * Where the node listens; `[]` for a node that only dials
   *
   * @default the transport's loopback address, any free port
   */
  listen?: string[]

  /**
   * @default {}
   */
  services?: ServiceFactoryMap<S>

  /**
   * Anything else libp2p takes, over what is set here
   *
   * @default {}
   */
  config?: Libp2pOptions<S>
}

/**
 * The libp2p node every tool runs: noise, yamux, one transport, and allowed
 * to dial loopback addresses (libp2p denies them by default)
 */
export async function createNode <S extends ServiceMap = ServiceMap> (options: NodeOptions<S> = {}): Promise<Libp2p<S>> {
  const transport = options.transport ?? 'ours'
  const listen = typeof transport === 'string' ? TRANSPORTS[transport].listen : TRANSPORTS.ours.listen

  return createLibp2p<S>({
    addresses: {
      listen: options.listen ?? [listen]
    },
    transports: [
      typeof transport === 'string' ? await TRANSPORTS[transport].load(options.init) : transport
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: options.services,
    connectionGater: {
      denyDialMultiaddr: () => false
    },
    ...options.config
  })
}

/**
 * A child process's answer to `stop`: stop the node, time it, then let go of
 * the parent, so that whether the process exits depends only on what the
 * node left behind
 */
export async function stopAndLetGo (node: Libp2p<any>): Promise<{ stopMs: number, error?: string }> {
  const start = performance.now()
  let error: string | undefined

  try {
    await node.stop()
  } catch (err: any) {
    error = err.message
  }

  letGo()

  return { stopMs: performance.now() - start, error }
}
