/**
 * Defect (c), connection established: we dial a peer, ping it, then the peer
 * stops responding (SIGSTOP). `node.stop()` closes the connection, but the
 * outbound WebSocket then waits for a closing handshake that never comes and
 * nothing terminates it, so the process cannot exit.
 *
 * Usage: `node reproductions/frozen-peer.ts [upstream|ours]`
 */
import { multiaddr } from '@multiformats/multiaddr'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode, startPeer, stopAndReport } from './scenario.ts'
import { judgeExit, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

async function scenario (transport: TransportId): Promise<void> {
  const peer = await startPeer(transport)
  const node = await scenarioNode(transport, false)
  const rtt = await node.services.ping.ping(multiaddr(peer.addr))

  peer.freeze()
  // let the kernel stop it before we go on
  await delay(250)
  await report('frozen', { rtt })

  // and then nothing: whether the process exits by itself is what we observe
  await stopAndReport(node)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => judgeExit(child, 'frozen')
})
