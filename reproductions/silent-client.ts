/**
 * Defect (b): a client opens a TCP connection to the WebSocket port and sends
 * nothing. The listener only tracks a socket once its first byte arrives, so
 * `listener.close()` neither destroys it nor sees the server close, and
 * `node.stop()` never resolves.
 *
 * Usage: `node reproductions/silent-client.ts [upstream|ours]`
 */
import { closedByServer, silentClient } from '../toolbox/stalled-clients.ts'
import { report } from '../toolbox/supervised.ts'
import { delay, within } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { reported, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

// @libp2p/tcp stops in well under a second on loopback
const STOP_DEADLINE_MS = 5_000

// the client learns of a close on loopback within a turn or two of its event
// loop, which may come after node.stop() resolved
const CLOSE_NOTICE_MS = 500

async function scenario (transport: TransportId): Promise<void> {
  const node = await scenarioNode(transport)
  const socket = await silentClient(node.getMultiaddrs()[0])

  // let the listener accept it
  await delay(250)

  const start = performance.now()
  const stopped = await within(Promise.resolve(node.stop()).then(() => true), STOP_DEADLINE_MS)
  const stopMs = Math.round(performance.now() - start)
  const socketClosed = await within(closedByServer(socket).then(() => true), CLOSE_NOTICE_MS) ?? false

  await report('stop', {
    stopMs: stopped === true ? stopMs : undefined,
    socketClosed
  })
  process.exit(0)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => {
    const stop = await reported(child, 'stop', 13_000)

    if (stop.stopMs == null) {
      return { ok: false, detail: `node.stop() still pending ${STOP_DEADLINE_MS} ms after it was called; the silent client's socket is ${stop.socketClosed === true ? 'closed' : 'still open'}` }
    }

    return { ok: true, detail: `node.stop() resolved in ${stop.stopMs} ms; the silent client's socket is ${stop.socketClosed === true ? 'closed' : 'still open'}` }
  }
})
