/**
 * Defect (f): a client sends a plain HTTP request, not a WebSocket upgrade,
 * and repeats it every second. Upstream answers 400 without
 * `Connection: close`, so HTTP/1.1 keep-alive leaves the socket open: for
 * Node.js's 5 s keep-alive timeout after each answer, and for as long as the
 * client keeps asking. Ours answers 400 with `Connection: close` and ends the
 * socket.
 *
 * Usage: `node reproductions/plain-http.ts [upstream|ours]`
 */
import { rawClient } from '../toolbox/raw-client.ts'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { reported, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

// past Node.js's 5 s keep-alive timeout, well within the child deadline
const WATCH_MS = 6_000
const REQUEST_INTERVAL_MS = 1_000

const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

async function scenario (transport: TransportId): Promise<void> {
  const node = await scenarioNode(transport)
  const client = await rawClient(node.getMultiaddrs()[0])
  const answers = (): number => client.received.toString('latin1').match(/^HTTP\/1\.1 400 /gm)?.length ?? 0

  const start = performance.now()
  let closedMs: number | undefined
  client.socket.once('close', () => { closedMs = Math.round(performance.now() - start) })
  client.write(REQUEST)
  await client.waitFor(() => answers() > 0 || client.closed, 5_000, 'an answer')
  const answerMs = Math.round(performance.now() - start)

  // a client that keeps asking, as a crawler or a health check would
  while (!client.closed && performance.now() - start < WATCH_MS) {
    await delay(REQUEST_INTERVAL_MS)
    client.write(REQUEST)
  }

  await client.waitFor(c => c.closed, Math.max(0, WATCH_MS - (performance.now() - start)), 'the socket closing').catch(() => {})

  await report('watched', {
    answerMs,
    answers: answers(),
    closedMs
  })
  process.exit(0)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => {
    const watched = await reported(child, 'watched', WATCH_MS + 5_000)

    if (watched.answers === 0) {
      return { detail: `no 400 answer to a plain HTTP request${watched.closedMs == null ? '' : `; the socket closed after ${watched.closedMs} ms`}` }
    }

    if (watched.closedMs == null) {
      return { ok: false, detail: `a client repeating a plain HTTP request every ${REQUEST_INTERVAL_MS} ms still held its socket ${WATCH_MS} ms later, ${watched.answers} requests answered with 400` }
    }

    if (watched.answers > 1) {
      return { ok: false, detail: `the socket stayed open after the 400 answer: ${watched.answers} requests answered before it closed ${watched.closedMs} ms after the first` }
    }

    return { ok: true, detail: `the listener answered 400 after ${watched.answerMs} ms and the socket closed ${watched.closedMs} ms after the request` }
  }
})
