/**
 * Defect (e), no payload limit: after the upgrade a client announces a 64 MiB
 * binary frame and sends 16 MiB of it. Upstream's `WebSocketServer` keeps
 * `ws`'s default `maxPayload` of 100 MiB, so the server buffers every byte of
 * the unfinished message, waiting for the rest. Ours (`maxPayload`, default
 * 1 MiB) closes with 1009 as soon as it reads the frame header.
 *
 * Usage: `node reproductions/oversize-message.ts [upstream|ours]`
 */
import { closeCodeOf, frame, OPCODE, rawWebSocket } from '../toolbox/raw-websocket.ts'
import { report } from '../toolbox/supervised.ts'
import { delay } from '../toolbox/time.ts'
import { scenarioNode } from './scenario.ts'
import { reported, reproduce } from './verdicts.ts'
import type { TransportId } from '../toolbox/transports.ts'

const MiB = 1024 * 1024
const ANNOUNCED = 64 * MiB
const SENT = 16 * MiB

async function scenario (transport: TransportId): Promise<void> {
  const node = await scenarioNode(transport)
  const { client: { socket }, received } = await rawWebSocket(node.getMultiaddrs()[0])
  const code = (): number | undefined => closeCodeOf(received())

  // one chunk written again and again, so the client itself holds 1 MiB
  const chunk = Buffer.alloc(MiB)
  const before = retainedBytes()

  socket.write(frame({ opcode: OPCODE.binary, length: ANNOUNCED }))
  let sent = 0

  // a client stops once the server has closed, or sent its close frame
  while (sent < SENT && !socket.destroyed && code() == null) {
    if (!socket.write(chunk)) {
      await new Promise(resolve => {
        socket.once('drain', resolve)
        socket.once('close', resolve)
      })
    }
    sent += chunk.byteLength
  }

  // let the server read what is in flight
  await delay(500)

  await report('sent', {
    sentMiB: sent / MiB,
    code: code(),
    closed: socket.destroyed || code() != null,
    retainedMiB: Math.round((retainedBytes() - before) / MiB * 10) / 10
  })
  process.exit(0)
}

/**
 * Bytes held in Buffers process-wide: the server's share is what grew
 */
function retainedBytes (): number {
  globalThis.gc?.()
  return process.memoryUsage().arrayBuffers
}

await reproduce({
  script: import.meta.url,
  scenario,
  child: { execArgv: ['--expose-gc'] },
  judge: async (child) => {
    const sent = await reported(child, 'sent', 13_000)

    const what = `after a frame header announcing ${ANNOUNCED / MiB} MiB, ${sent.sentMiB} MiB sent`

    if (sent.closed === true && sent.code === 1009) {
      return { ok: true, detail: `${what}: the server closed with 1009 (message too big); Buffers grew by ${sent.retainedMiB} MiB` }
    }

    return {
      ok: false,
      detail: `${what}: ${sent.closed === true ? `closed with ${sent.code ?? 'no close frame'}` : 'connection still open'}; Buffers grew by ${sent.retainedMiB} MiB`
    }
  }
})
