/**
 * The shutdown hazards, defined once: the demo measures each against every
 * transport, test/process-exit.spec.ts asserts that ours survives each.
 * Adding an entry here adds a row to the one and a test to the other
 */
import { multiaddr } from '@multiformats/multiaddr'
import { silentServer } from './silent-server.ts'
import { silentClient } from './stalled-clients.ts'
import { delay } from './time.ts'
import { TRANSPORTS } from './transports.ts'
import type { RemoteNode, RemoteNodeOptions } from './remote-node.ts'
import type { TransportId } from './transports.ts'

/**
 * What a hazard may use to set itself up. Everything started through it is
 * killed or closed when the scenario ends, whatever happened
 */
export interface Setup {
  transport: TransportId

  /**
   * Start the node under test. With `{ started: false }` its node is created
   * but not started: `child.call('start')` starts it, e.g. for a stop that
   * comes while it is still starting
   */
  subject(options?: RemoteNodeOptions): Promise<RemoteNode>

  /**
   * Start a remote peer on the same transport
   */
  peer(): Promise<RemoteNode>

  /**
   * Have `from` dial `addr` and hold a stream open on the new connection
   */
  connect(from: RemoteNode, addr: string): Promise<void>

  /**
   * Wait for a promise no longer than the setup deadline
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>

  /**
   * Run when the scenario ends
   */
  defer(cleanup: () => unknown): void
}

export interface Hazard {
  /**
   * Short, for progress lines and JSON
   */
  id: string

  /**
   * Its number in the brief, for the table
   */
  row: string
  label: string

  /**
   * Bring the hazard about and return the node under test, ready to be stopped
   */
  setup(setup: Setup): Promise<RemoteNode>
}

// the kernel accepts a connection, or stops a process, a little before the
// node under test can notice: give it that moment, generously on a busy machine
const SETTLE_MS = 250

/**
 * A peer connected to the node under test, dialed by `dialer`, then frozen
 */
function frozenPeer (id: string, row: string, label: string, dialer: 'peer' | 'subject'): Hazard {
  return {
    id,
    row,
    label,
    setup: async ({ subject, peer, connect }) => {
      const [us, them] = await Promise.all([subject(), peer()])
      await (dialer === 'peer' ? connect(them, us.addr) : connect(us, them.addr))
      them.child.freeze()
      await delay(SETTLE_MS)

      return us
    }
  }
}

export const HAZARDS: Hazard[] = [{
  id: 'idle',
  row: '1',
  label: 'idle node (listening, no connections)',
  setup: async ({ subject }) => subject()
}, {
  id: 'established',
  row: '2',
  label: 'connections both ways, streams open',
  setup: async ({ subject, peer, connect }) => {
    const [us, them] = await Promise.all([subject(), peer()])
    await connect(us, them.addr)
    await connect(them, us.addr)

    return us
  }
}, {
  id: 'raw-client',
  row: '3',
  label: 'raw TCP client that sends nothing',
  setup: async ({ subject, within, defer }) => {
    const us = await subject()
    const socket = await within(silentClient(multiaddr(us.addr)), 'raw TCP connect')
    defer(() => { socket.destroy() })
    await delay(SETTLE_MS)

    return us
  }
},
frozenPeer('frozen-inbound', '4a', 'peer dialed in, then froze (SIGSTOP)', 'peer'),
frozenPeer('frozen-outbound', '4b', 'peer we dialed, then froze (SIGSTOP)', 'subject'),
{
  id: 'silent-dial',
  row: '5',
  label: 'stop while dialing a silent server',
  setup: async ({ transport, subject, within, defer }) => {
    const server = await silentServer()
    defer(async () => server.close())

    const us = await subject()
    await within(us.child.call('dial', { addr: `${server.multiaddr}${TRANSPORTS[transport].suffix}` }), 'the dial starting')
    await within(server.contacted(), 'dial reaching the silent server')

    return us
  }
}]
