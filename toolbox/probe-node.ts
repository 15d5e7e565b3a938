/**
 * A libp2p node in a child process whose connections the parent watches, for
 * the network fault scenarios: it reports each connection's open and close
 * (with its error) the moment they happen, streams to or from a peer without
 * end, and says which TCP sockets it holds as the kernel sees them. Started
 * through probe.ts, which documents the commands.
 *
 * Usage: `probe-node.ts <ProbeOptions as JSON>`
 */
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'
import { createNode, stopAndLetGo } from './node.ts'
import { report, serve } from './supervised.ts'
import { heldTcpSockets, openFds } from './tcp-table.ts'
import { now } from './time.ts'
import type { ProbeOptions } from './probe.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'

/**
 * Reads everything, answers nothing
 */
const SINK_PROTOCOL = '/cleanstop/sink/1.0.0'

/**
 * Writes without end to whoever opens it
 */
const SOURCE_PROTOCOL = '/cleanstop/source/1.0.0'

const CHUNK = new Uint8Array(64 * 1024)

const options: ProbeOptions = JSON.parse(process.argv[2])

const node: Libp2p<{ ping: Ping }> = await createNode({
  transport: options.transport,
  init: options.init,
  listen: options.listen,
  services: { ping: ping() },
  config: {
    connectionMonitor: options.monitor == null
      ? { enabled: false }
      : {
          pingInterval: options.monitor.pingInterval,
          pingTimeout: { minTimeout: options.monitor.pingTimeout, maxTimeout: options.monitor.pingTimeout }
        }
  }
})

// what flows through the streams of this process, both ways
const flow = {
  sent: 0,
  received: 0,
  writers: 0,
  // writers waiting for 'drain' right now
  blocked: 0
}

const describe = (connection: Connection): Record<string, unknown> => ({
  id: connection.id,
  remote: connection.remoteAddr.toString(),
  direction: connection.direction
})

node.addEventListener('connection:open', ({ detail: connection }) => {
  void report('connection:open', { ...describe(connection), t: now() })

  connection.addEventListener('close', (evt) => {
    void report('connection:close', {
      ...describe(connection),
      t: now(),
      local: evt.local,
      error: evt.error == null ? undefined : `${evt.error.name}: ${evt.error.message}`
    })
  }, { once: true })
})

async function drain (stream: Stream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      stream.removeEventListener('close', onClose)
      resolve()
    }
    const onClose = (): void => {
      stream.removeEventListener('drain', onDrain)
      reject(new Error('stream closed'))
    }

    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}

/**
 * Write until the stream goes; whatever ends it is the scenario's business
 */
async function write (stream: Stream): Promise<void> {
  flow.writers++

  try {
    while (stream.writeStatus === 'writable') {
      if (stream.send(CHUNK)) {
        // a send that never has to wait would never yield
        await new Promise(resolve => setImmediate(resolve))
      } else {
        flow.blocked++

        try {
          await drain(stream)
        } finally {
          flow.blocked--
        }
      }

      flow.sent += CHUNK.byteLength
    }
  } catch {
    // the stream closed or was aborted
  } finally {
    flow.writers--
  }
}

async function read (stream: Stream): Promise<void> {
  try {
    for await (const buf of stream) {
      flow.received += buf.byteLength
    }
  } catch {
    // the stream was aborted or reset
  }
}

await node.handle(SINK_PROTOCOL, (stream) => { void read(stream) })
await node.handle(SOURCE_PROTOCOL, (stream) => { void write(stream) })

/**
 * Whether the transport told the muxer to wait: its socket's buffer is full
 */
function transportBlocked (connection: Connection): boolean | undefined {
  return (connection as any).maConn?.writableNeedsDrain
}

function peerIdOf (addr: string): string | undefined {
  return /\/p2p\/(\w+)/.exec(addr)?.[1]
}

/**
 * Our transport's sockets by phase, for a node running it
 */
function socketCounts (): Record<string, unknown> | undefined {
  if (options.transport !== 'ours') {
    return undefined
  }

  const manager = (node as any).components.transportManager

  return {
    listener: manager.getListeners().map((listener: any) => listener.socketCounts?.()),
    dialer: manager.getTransports().map((transport: any) => transport.socketCounts?.())
  }
}

serve({
  dial: async ({ addr }) => {
    const connection = await node.dial(multiaddr(addr), { force: true, signal: AbortSignal.timeout(10_000) })

    return describe(connection)
  },
  // a dial that may never complete: answered at once, its end reported
  dialInBackground: async ({ addr }) => {
    const started = now()

    node.dial(multiaddr(addr), { force: true }).then(
      async (connection) => { await report('dial:settled', { ...describe(connection), t: now(), started }) },
      async (err: Error) => { await report('dial:settled', { error: `${err.name}: ${err.message}`, t: now(), started }) }
    )
  },
  // `streams` streams on the connection to `addr`: we write into them
  // ('send') or the remote does ('receive'). Resolves once data flows
  flood: async ({ addr, direction, streams }) => {
    const connection = node.getConnections().find(c => c.remotePeer.toString() === peerIdOf(addr)) ??
      await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) })
    const before = flow.sent + flow.received

    for (let i = 0; i < (streams ?? 1); i++) {
      const stream = await connection.newStream(direction === 'send' ? SINK_PROTOCOL : SOURCE_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      void (direction === 'send' ? write(stream) : read(stream))
    }

    const deadline = performance.now() + 10_000

    while (flow.sent + flow.received === before) {
      if (performance.now() > deadline) {
        throw new Error('no data flowed within 10 s')
      }

      await new Promise(resolve => setTimeout(resolve, 10))
    }
  },
  ping: async ({ addr }) => node.services.ping.ping(multiaddr(addr), { signal: AbortSignal.timeout(10_000) }),
  status: async () => ({
    t: now(),
    connections: node.getConnections().map(connection => ({
      ...describe(connection),
      status: connection.status,
      transportBlocked: transportBlocked(connection)
    })),
    flow: { ...flow },
    held: heldTcpSockets(),
    fds: openFds(),
    sockets: socketCounts()
  }),
  stop: async () => stopAndLetGo(node)
}, { addrs: node.getMultiaddrs().map(String), peerId: node.peerId.toString() })
