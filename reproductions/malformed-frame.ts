/**
 * Defect (a): a client completes the WebSocket upgrade, then sends a frame
 * with the reserved opcode 3 (six bytes). `ws` rejects it and emits 'error'
 * on the server-side WebSocket; with no listener for it the process crashes.
 *
 * Usage: `node reproductions/malformed-frame.ts [upstream|ours]`
 */
import { closeCodeOf, frame, rawWebSocket } from '../toolbox/raw-websocket.ts'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { noReport, reported, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

// how long the process must survive the frame
const WATCH_MS = 2_000

async function scenario (transport: TransportId): Promise<void> {
  const node = await scenarioNode(transport)
  const { client, received } = await rawWebSocket(node.getMultiaddrs()[0])

  await report('upgraded')
  const sent = performance.now()
  client.write(frame({ opcode: 0x3 }))

  // the deadline passing is a finding: the connection stayed open
  await client.waitFor(() => client.closed || closeCodeOf(received()) != null, WATCH_MS, 'the server closing').catch(() => {})
  const code = closeCodeOf(received())
  const closedMs = Math.round(performance.now() - sent)
  await delay(Math.max(0, WATCH_MS - closedMs))

  await report('alive', { code, closedMs: client.closed || code != null ? closedMs : undefined })
  process.exit(0)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => {
    await reported(child, 'upgraded', 10_000)
    const alive = await child.next('alive', WATCH_MS + 3_000)

    if (alive == null) {
      await child.waitExit(1_000)

      return child.crash != null
        ? { ok: false, detail: child.describeExit() }
        : noReport(child, 'alive')
    }

    if (alive.closedMs == null) {
      return { ok: false, detail: `process alive but the connection was still open ${WATCH_MS} ms after the frame` }
    }

    return { ok: true, detail: `process alive ${WATCH_MS} ms after the frame; the server closed the connection with code ${alive.code ?? 'none'} after ${alive.closedMs} ms` }
  }
})
