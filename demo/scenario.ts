/**
 * The node under test: a libp2p node the parent sets a hazard up around, then
 * asks to stop. It times `node.stop()` itself and then leaves the process to
 * exit on its own (no process.exit): how long that takes is the other figure
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createNode, dialAndHold, errorMessage, report } from './node.ts'
import { isTransportId } from './transports.ts'
import type { Command } from './messages.ts'

const transport = process.argv[2]

if (!isTransportId(transport)) {
  throw new Error(`Unknown transport "${transport}"`)
}

let stopping = false

// a parent that died cannot kill us; once stopping, the disconnect is ours
process.on('disconnect', () => {
  if (!stopping) {
    process.exit(1)
  }
})

const node = await createNode(transport)

process.on('message', (command: Command) => {
  if (command.type === 'dial' && command.hold) {
    dialAndHold(node, command.addr)
      .then(() => { report({ type: 'dialed' }) })
      .catch(err => { report({ type: 'failed', error: errorMessage(err) }) })
  } else if (command.type === 'dial') {
    // never settles before stop: the server it dials does not answer
    node.dial(multiaddr(command.addr)).catch(() => {})
  } else if (command.type === 'stop') {
    void stop()
  }
})

report({ type: 'listening', addrs: node.getMultiaddrs().map(ma => ma.toString()) })

async function stop (): Promise<void> {
  stopping = true
  let error: string | undefined
  const start = performance.now()

  try {
    await node.stop()
  } catch (err) {
    error = errorMessage(err)
  }

  const stopMs = performance.now() - start

  // the IPC channel would keep us alive: close it once the report is out
  report({ type: 'stopped', stopMs, error }, () => {
    process.disconnect?.()
  })
}
