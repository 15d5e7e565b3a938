/**
 * Defect (d): `connection.abort()` resets the connection, which ends in the
 * transport's `sendReset()`. Upstream calls `websocket.close(1006)` there, a
 * code both `ws` and the WHATWG WebSocket refuse to send: the call throws, the
 * error is only logged, and the socket stays open, so the remote never learns
 * of the reset. Tried from both ends, the dialer and the listener.
 *
 * Usage: `node reproductions/reset.ts [upstream|ours]`
 */
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { reported, reproduce } from './verdicts.ts'
import type { Node } from './scenario.ts'
import type { TransportId } from '../toolbox/transports.ts'
import type { Connection } from '@libp2p/interface'

// a reset reaches a loopback peer in a few ms
const WATCH_MS = 3_000

async function scenario (transport: TransportId): Promise<void> {
  const dialer = await scenarioNode(transport, false)
  const listener = await scenarioNode(transport)

  await report('reset', {
    dialer: await resetFrom(dialer, listener, 'dialer'),
    listener: await resetFrom(dialer, listener, 'listener')
  })
  process.exit(0)
}

/**
 * Open a fresh connection, abort it at one end and return how many ms the
 * other end took to see it closed, or null if it did not within WATCH_MS
 */
async function resetFrom (dialer: Node, listener: Node, end: 'dialer' | 'listener'): Promise<number | null> {
  const outbound = await dialer.dial(listener.getMultiaddrs()[0], { force: true })
  await dialer.services.ping.ping(listener.getMultiaddrs()[0])

  const inbound = listener.getConnections(dialer.peerId).find(conn => conn.remoteAddr != null && conn.direction === 'inbound' && conn.status === 'open')

  if (inbound == null) {
    throw new Error('The listener has no open inbound connection')
  }

  const [local, remote]: Connection[] = end === 'dialer' ? [outbound, inbound] : [inbound, outbound]
  const start = performance.now()
  local.abort(new Error(`reset by the ${end}`))

  while (remote.status === 'open' && performance.now() - start < WATCH_MS) {
    await delay(5)
  }

  return remote.status === 'open' ? null : Math.round(performance.now() - start)
}

await reproduce({
  script: import.meta.url,
  scenario,
  // libp2p logs why sendReset failed, at the error level
  child: { env: { DEBUG: 'libp2p:websockets:*:error' } },
  judge: async (child) => {
    const result = await reported(child, 'reset', 12_000)

    const describe = (end: string, ms: number | null): string => ms == null
      ? `a reset by the ${end} left the other end open ${WATCH_MS} ms later`
      : `a reset by the ${end} closed the other end in ${ms} ms`
    const resetFailures = [...child.output.matchAll(/connection:(inbound|outbound):\S+ failed to send reset to remote - (.*)/g)]
      .map(([, direction, error]) => `${direction} sendReset threw ${error.trim()}`)
    const detail = [
      describe('dialer', result.dialer),
      describe('listener', result.listener),
      ...new Set(resetFailures)
    ].join('; ')

    return { ok: result.dialer != null && result.listener != null, detail }
  }
})
