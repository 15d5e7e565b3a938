/**
 * Defect (e), no handshake deadline: a client connects and sends the start of
 * an HTTP request, never its end. Node.js's `headersTimeout` and
 * `requestTimeout` do not reach sockets handed to an `http.Server` with
 * `emit('connection')`, and the listener sets no deadline of its own: the
 * socket is held for as long as the client likes. Ours destroys it after
 * `handshakeTimeout` (default 10 s).
 *
 * Usage: `node reproductions/handshake-deadline.ts [upstream|ours]`
 */
import { closedByServer, halfHttpClient } from '../toolbox/stalled-clients.ts'
import { report } from '../toolbox/supervised.ts'
import { within } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { reported, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

// past our 10 s default, within the 15 s child deadline
const WATCH_MS = 11_000

async function scenario (transport: TransportId): Promise<void> {
  const node = await scenarioNode(transport)
  const start = performance.now()
  const socket = await halfHttpClient(node.getMultiaddrs()[0])
  const closed = await within(closedByServer(socket).then(() => true), WATCH_MS)
  await report('watched', { closedMs: closed == null ? undefined : Math.round(performance.now() - start) })
  process.exit(0)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => {
    const watched = await reported(child, 'watched', WATCH_MS + 3_000)

    if (watched.closedMs == null) {
      return { ok: false, detail: `a client that sent half an HTTP request still held its socket ${WATCH_MS} ms later` }
    }

    return { ok: true, detail: `the listener destroyed the socket of a client that sent half an HTTP request after ${watched.closedMs} ms` }
  }
})
