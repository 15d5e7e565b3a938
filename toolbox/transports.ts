/**
 * The transports the tools compare, named the same everywhere: `upstream` is
 * `@libp2p/websockets` as installed, `ours` this package (from src/), `tcp`
 * `@libp2p/tcp`, the reference.
 *
 * With `UPSTREAM_WEBSOCKETS` set to the directory of a built
 * `@libp2p/websockets` (its `dist/src/index.js`), `upstream` is that build
 * instead: upstream/verify.ts runs the tools against upstream with our patches
 * applied. It is read on use, not on import, and child processes inherit it,
 * so every process of a run agrees
 */
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { WebSocketsInit } from '../src/index.ts'
import type { Transport } from '@libp2p/interface'

export type TransportId = 'upstream' | 'ours' | 'tcp'

export interface TransportInfo {
  /**
   * The package, as tables name it
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
   * The transport, with `init` where it takes options (upstream takes
   * `maxBufferedAmount` as ours does, tcp the two inactivity timeouts).
   * Imported on first use, so that a child process does not load the other
   * two
   */
  load(init?: WebSocketsInit): Promise<(components: any) => Transport>
}

export const TRANSPORTS: Record<TransportId, TransportInfo> = {
  upstream: {
    get name () {
      return process.env.UPSTREAM_WEBSOCKETS == null ? '@libp2p/websockets' : '@libp2p/websockets (patched)'
    },
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    suffix: '/ws',
    load: async (init) => (await importUpstream()).webSockets(init as any)
  },
  ours: {
    name: '@cleanstop/libp2p-websockets',
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    suffix: '/ws',
    load: async (init) => (await import('../src/index.ts')).webSockets(init)
  },
  tcp: {
    name: '@libp2p/tcp',
    listen: '/ip4/127.0.0.1/tcp/0',
    suffix: '',
    // the inactivity timeouts are named alike in both packages
    load: async (init) => (await import('@libp2p/tcp')).tcp({
      inboundSocketInactivityTimeout: init?.inboundSocketInactivityTimeout,
      outboundSocketInactivityTimeout: init?.outboundSocketInactivityTimeout
    })
  }
}

async function importUpstream (): Promise<typeof import('@libp2p/websockets')> {
  const build = process.env.UPSTREAM_WEBSOCKETS

  if (build == null) {
    return import('@libp2p/websockets')
  }

  return import(pathToFileURL(join(resolve(build), 'dist', 'src', 'index.js')).href)
}

/**
 * In the order tables show them and rounds run them
 */
export const TRANSPORT_IDS = Object.keys(TRANSPORTS) as TransportId[]

export function isTransportId (id: unknown): id is TransportId {
  return typeof id === 'string' && Object.hasOwn(TRANSPORTS, id)
}
