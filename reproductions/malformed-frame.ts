/**
 * Defect (a): a client completes the WebSocket upgrade, then sends a frame
 * with the reserved opcode 3 (six bytes). `ws` rejects it and emits 'error'
 * on the server-side WebSocket; with no listener for it the process crashes.
 *
 * Usage: `node reproductions/malformed-frame.ts [upstream|ours]`
 */
import { closeCode, frameHeader, upgrade } from './raw-websocket.ts'
import { createNode, delay, portOf, report, within } from './scenario.ts'
import { noReport, reproduce } from './verdicts.ts'
import type { TransportName } from './scenario.ts'

// how long the process must survive the frame
const WATCH_MS = 2_000

async function scenario (transport: TransportName): Promise<void> {
  const node = await createNode(transport)
  const socket = await upgrade(portOf(node))
  const code = closeCode(socket)

  report('upgraded')
  const sent = performance.now()
  socket.write(frameHeader(0x3, 0))

  const closed = await within(code, WATCH_MS)
  const closedMs = Math.round(performance.now() - sent)
  await delay(Math.max(0, WATCH_MS - closedMs))

  report('alive', { code: closed, closedMs: socket.destroyed ? closedMs : undefined })
  process.exit(0)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => {
    if (await child.next('upgraded', 10_000) == null) {
      return noReport(child, 'upgraded')
    }

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
