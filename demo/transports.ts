import type { Transport } from '@libp2p/interface'

export type TransportId = 'websockets' | 'cleanstop' | 'tcp'

export interface TransportInfo {
  /**
   * The package under test, as the table names it
   */
  name: string

  /**
   * Where a node listens: loopback, any free port
   */
  listen: string

  /**
   * Appended to `/ip4/127.0.0.1/tcp/<port>` to dial with this transport
   */
  suffix: string

  /**
   * Imported only in the child that needs it, so a child does not pay for
   * loading the other two
   */
  load(): Promise<(components: any) => Transport>
}

export const TRANSPORTS: Record<TransportId, TransportInfo> = {
  websockets: {
    name: '@libp2p/websockets',
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    suffix: '/ws',
    load: async () => (await import('@libp2p/websockets')).webSockets()
  },
  cleanstop: {
    name: '@cleanstop/libp2p-websockets',
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    suffix: '/ws',
    load: async () => (await import('../src/index.ts')).webSockets()
  },
  tcp: {
    name: '@libp2p/tcp',
    listen: '/ip4/127.0.0.1/tcp/0',
    suffix: '',
    load: async () => (await import('@libp2p/tcp')).tcp()
  }
}

export const TRANSPORT_IDS = Object.keys(TRANSPORTS) as TransportId[]

export function isTransportId (id: unknown): id is TransportId {
  return typeof id === 'string' && Object.hasOwn(TRANSPORTS, id)
}
