/**
 * The remote end of a hazard: a libp2p node in its own process, so the parent
 * can freeze it with SIGSTOP and the node under test sees a peer that stops
 * responding without closing anything
 */
import { createNode, dialAndHold, errorMessage, report } from './node.ts'
import { isTransportId } from './transports.ts'
import type { Command } from './messages.ts'

const transport = process.argv[2]

if (!isTransportId(transport)) {
  throw new Error(`Unknown transport "${transport}"`)
}

// the parent kills peers when done; this covers a parent that died first
process.on('disconnect', () => {
  process.exit(0)
})

const node = await createNode(transport)

process.on('message', (command: Command) => {
  if (command.type === 'dial') {
    dialAndHold(node, command.addr)
      .then(() => { report({ type: 'dialed' }) })
      .catch(err => { report({ type: 'failed', error: errorMessage(err) }) })
  }
})

report({ type: 'listening', addrs: node.getMultiaddrs().map(ma => ma.toString()) })
