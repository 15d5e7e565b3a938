import { silentClient, silentServer } from './silent.ts'
import type { Child } from './processes.ts'
import type { TransportInfo } from './transports.ts'

export type HazardId = 'idle' | 'established' | 'raw-client' | 'frozen-inbound' | 'frozen-outbound' | 'silent-dial'

/**
 * A node started in a child process, and the address it listens on
 */
export interface Started {
  child: Child
  addr: string
}

/**
 * What a hazard may use to set itself up. Everything started through it is
 * killed or closed when the scenario ends, whatever happened
 */
export interface Setup {
  transport: TransportInfo

  /**
   * Start the node under test
   */
  subject(): Promise<Started>

  /**
   * Start a remote peer on the same transport
   */
  peer(): Promise<Started>

  /**
   * Have `from` dial `addr` and hold a stream open on the new connection
   */
  connect(from: Started, addr: string): Promise<void>

  /**
   * Wait for a promise no longer than the setup deadline
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>

  /**
   * Run when the scenario ends
   */
  defer(cleanup: () => void): void
}

export interface Hazard {
  id: HazardId

  /**
   * Its number in the brief, for the table
   */
  row: string
  label: string

  /**
   * Bring the hazard about and return the node under test, ready to be stopped
   */
  setup(setup: Setup): Promise<Child>
}

// the kernel accepts a connection, or stops a process, a little before the
// node under test can notice: give it that moment, generously on a busy machine
const SETTLE_MS = 250

export const HAZARDS: Hazard[] = [{
  id: 'idle',
  row: '1',
  label: 'idle node (listening, no connections)',
  setup: async ({ subject }) => {
    return (await subject()).child
  }
}, {
  id: 'established',
  row: '2',
  label: 'connections both ways, streams open',
  setup: async ({ subject, peer, connect }) => {
    const [us, them] = await Promise.all([subject(), peer()])
    await connect(us, them.addr)
    await connect(them, us.addr)

    return us.child
  }
}, {
  id: 'raw-client',
  row: '3',
  label: 'raw TCP client that sends nothing',
  setup: async ({ subject, within, defer }) => {
    const us = await subject()
    const socket = await within(silentClient(portOf(us.addr)), 'raw TCP connect')
    defer(() => { socket.destroy() })
    await delay(SETTLE_MS)

    return us.child
  }
}, {
  id: 'frozen-inbound',
  row: '4a',
  label: 'peer dialed in, then froze (SIGSTOP)',
  setup: async ({ subject, peer, connect }) => {
    const [us, them] = await Promise.all([subject(), peer()])
    await connect(them, us.addr)
    them.child.freeze()
    await delay(SETTLE_MS)

    return us.child
  }
}, {
  id: 'frozen-outbound',
  row: '4b',
  label: 'peer we dialed, then froze (SIGSTOP)',
  setup: async ({ subject, peer, connect }) => {
    const [us, them] = await Promise.all([subject(), peer()])
    await connect(us, them.addr)
    them.child.freeze()
    await delay(SETTLE_MS)

    return us.child
  }
}, {
  id: 'silent-dial',
  row: '5',
  label: 'stop while dialing a silent server',
  setup: async ({ transport, subject, within, defer }) => {
    const server = await silentServer()
    defer(() => { server.close() })

    const us = await subject()
    us.child.send({ type: 'dial', addr: `/ip4/127.0.0.1/tcp/${server.port}${transport.suffix}`, hold: false })
    await within(server.contacted, 'dial reaching the silent server')

    return us.child
  }
}]

function portOf (addr: string): number {
  const port = addr.match(/\/tcp\/(\d+)/)?.[1]

  if (port == null) {
    throw new Error(`No TCP port in ${addr}`)
  }

  return Number(port)
}

async function delay (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
