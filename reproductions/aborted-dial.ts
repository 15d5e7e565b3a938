/**
 * Defect (c), aborted dial: the peer stops responding (SIGSTOP) before we dial
 * it. The kernel still accepts the TCP connection, so the WebSocket waits for
 * an upgrade response; the dial is aborted after 1 s. Then `node.stop()`: does
 * anything still hold the process?
 *
 * Usage: `node reproductions/aborted-dial.ts [upstream|ours]`
 */
import { multiaddr } from '@multiformats/multiaddr'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode, startPeer, stopAndReport } from './scenario.ts'
import { describeDial, judgeExit, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

const DIAL_TIMEOUT_MS = 1_000

async function scenario (transport: TransportId): Promise<void> {
  const peer = await startPeer(transport)
  const node = await scenarioNode(transport, false)

  peer.freeze()
  await delay(250)

  const start = performance.now()
  const error = await node.dial(multiaddr(peer.addr), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    .then(() => undefined, (err: Error) => err.name)
  await report('dial-aborted', { ms: Math.round(performance.now() - start), error })

  await stopAndReport(node)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => judgeExit(child, 'dial-aborted', describeDial)
})
