/**
 * The remote node of a reproduction, in its own process so that the node
 * under test can freeze it (SIGSTOP). Usage: `node peer.ts <transport>`
 */
import { createNode } from './scenario.ts'
import type { TransportName } from './scenario.ts'

// the reproduction kills us; this bounds our life if it could not
setTimeout(() => { process.exit(0) }, 30_000)

const node = await createNode(process.argv[2] as TransportName)

process.stdout.write(`listening ${node.getMultiaddrs()[0]}\n`)
