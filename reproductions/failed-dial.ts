/**
 * Defect (c), failed dial: the WebSocket opens, then the libp2p upgrade fails
 * (the address names another peer ID, so noise rejects the peer). The upgrader
 * aborts the connection; the peer then stops responding (SIGSTOP) and
 * `node.stop()` is called: does anything still hold the process?
 *
 * Usage: `node reproductions/failed-dial.ts [upstream|ours]`
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode, startPeer, stopAndReport } from './scenario.ts'
import { describeDial, judgeExit, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

async function scenario (transport: TransportId): Promise<void> {
  const peer = await startPeer(transport)
  const node = await scenarioNode(transport, false)

  // a stale address: right host and port, another peer's ID
  const otherPeer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const addr = multiaddr(peer.addr).decapsulateCode(421).encapsulate(`/p2p/${otherPeer}`)

  const start = performance.now()
  const error = await node.dial(addr)
    .then(() => undefined, (err: Error) => err.name)
  await report('dial-failed', { ms: Math.round(performance.now() - start), error })

  peer.freeze()
  await delay(250)

  await stopAndReport(node)
}

await reproduce({
  script: import.meta.url,
  scenario,
  judge: async (child) => judgeExit(child, 'dial-failed', describeDial)
})
