/**
 * What a reproduction's child uses: the transport under test, a libp2p node
 * around it, a peer in another process, and reports to the parent
 */
import { spawn } from 'node:child_process'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { createLibp2p } from 'libp2p'
import type { Libp2p, Transport } from '@libp2p/interface'
import type { ChildProcess } from 'node:child_process'

/**
 * `upstream` is `@libp2p/websockets` as installed, `ours` is this repository's
 * src/, both with default options
 */
export type TransportName = 'upstream' | 'ours'

export type Node = Libp2p<{ ping: ReturnType<ReturnType<typeof ping>> }>

export async function loadTransport (name: TransportName): Promise<(components: any) => Transport> {
  if (name === 'upstream') {
    return (await import('@libp2p/websockets')).webSockets()
  }

  return (await import('../src/index.ts')).webSockets()
}

/**
 * A node as an application would run one: noise, yamux, ping, and allowed to
 * dial loopback. It listens on a free loopback port unless `listen` is false
 */
export async function createNode (transport: TransportName, listen = true): Promise<Node> {
  return createLibp2p({
    addresses: {
      listen: listen ? ['/ip4/127.0.0.1/tcp/0/ws'] : []
    },
    transports: [await loadTransport(transport)],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      ping: ping()
    },
    connectionGater: {
      denyDialMultiaddr: () => false
    }
  })
}

export function portOf (node: Libp2p): number {
  const port = node.getMultiaddrs()[0]?.toString().match(/\/tcp\/(\d+)/)?.[1]

  if (port == null) {
    throw new Error('The node listens on no TCP port')
  }

  return Number(port)
}

/**
 * Tell the parent something happened: one JSON line on stdout
 */
export function report (event: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n')
}

/**
 * Stop the node, report how long that took, and a moment later what still
 * keeps the event loop alive (sockets, timers), if the process is still there
 */
export async function stopAndReport (node: Libp2p): Promise<void> {
  const start = performance.now()
  await node.stop()
  report('stopped', { stopMs: Math.round(performance.now() - start) })

  // unref'd: it must not be what keeps us alive
  setTimeout(() => {
    const counts: Record<string, number> = {}

    // PipeWrap is our stdout and stderr, which never hold the process
    for (const resource of process.getActiveResourcesInfo().filter(name => name !== 'PipeWrap')) {
      counts[resource] = (counts[resource] ?? 0) + 1
    }

    report('alive', { resources: counts })
  }, 500).unref()
}

export function errorMessage (err: any): string {
  return `${err?.name ?? 'Error'}: ${err?.message ?? err}`
}

export async function delay (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/**
 * Resolves with the promise's value, or with `undefined` once `ms` have passed
 */
export async function within <T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined

  try {
    return await Promise.race([
      promise,
      new Promise<undefined>(resolve => {
        timer = setTimeout(() => { resolve(undefined) }, ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A libp2p node in another process, so that it can be frozen with SIGSTOP: its
 * sockets stay open and nothing answers on them
 */
export interface Peer {
  addr: string
  freeze(): void
}

/**
 * Start peer.ts on the same transport. It stays in our process group (the
 * parent kills the group at the end, frozen members included) and holds
 * nothing of ours open, so it never keeps this process alive
 */
export async function startPeer (transport: TransportName): Promise<Peer> {
  const child: ChildProcess = spawn(process.execPath, [new URL('./peer.ts', import.meta.url).pathname, transport], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''

  const addr = await new Promise<string>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const match = output.match(/^listening (\S+)$/m)

      if (match != null) {
        resolve(match[1])
      }
    })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    child.once('exit', (code, signal) => { reject(new Error(`peer exited (${signal ?? code}): ${output}`)) })
  })

  child.stdout?.destroy()
  child.stderr?.destroy()
  child.removeAllListeners('exit')
  child.unref()

  return {
    addr,
    freeze: () => { child.kill('SIGSTOP') }
  }
}
