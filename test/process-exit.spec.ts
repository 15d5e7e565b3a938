import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'aegir/chai'
import { runHazard } from '../toolbox/hazard-run.ts'
import { HAZARDS } from '../toolbox/hazards.ts'
import type { Deadlines } from '../toolbox/hazard-run.ts'
import type { Hazard } from '../toolbox/hazards.ts'
import type { TransportId } from '../toolbox/transports.ts'

// libp2p itself keeps about a second of timers after stop(); a node using
// @libp2p/tcp exits within that, upstream WebSockets not for minutes
const DEADLINES: Deadlines = {
  setupMs: 10_000,
  stopMs: 5_000,
  exitMs: 8_000
}

/**
 * The shutdown hazards of the demo (toolbox/hazards.ts), each in fresh child
 * processes: node.stop() resolves and the process then exits by itself
 */
describe('the process exits by itself after node.stop()', function () {
  this.timeout(60_000)

  const expectExit = async (hazard: Hazard, transport: TransportId): Promise<void> => {
    const result = await runHazard(hazard, transport, DEADLINES)

    expect(result.error, 'an error setting the hazard up or stopping').to.be.undefined()
    expect(result.stopHang, `node.stop() still pending after ${DEADLINES.stopMs} ms`).to.be.false()
    expect(result.exitHang, `the process still running ${DEADLINES.exitMs} ms after node.stop()`).to.be.false()
  }

  for (const hazard of HAZARDS) {
    it(`hazard ${hazard.row}: ${hazard.label}`, async () => {
      await expectExit(hazard, 'ours')
    })
  }

  it(`hazard ${HAZARDS[0].row}: ${HAZARDS[0].label}, on @libp2p/tcp for reference`, async () => {
    await expectExit(HAZARDS[0], 'tcp')
  })

  // libp2p 3.3 ignores a node.stop() that comes while node.start() runs,
  // whatever the transport, so the stop that reaches our listener while it
  // binds is listener.close(): the process must exit after it all the same
  for (const when of ['same-tick', 'next-tick']) {
    it(`a listener closed while listen() is still binding (${when}) lets the process exit`, async () => {
      // the fixture as written, run through Node.js's type stripping
      const script = fileURLToPath(new URL('../../test/fixtures/close-while-listening.ts', import.meta.url))
      const { code, stdout } = await new Promise<{ code: number | null, stdout: string }>((resolve) => {
        execFile(process.execPath, [script, when], { timeout: DEADLINES.exitMs }, (err, stdout) => {
          resolve({ code: err == null ? 0 : (err as any).code ?? null, stdout })
        })
      })

      expect(code, `the process did not exit by itself within ${DEADLINES.exitMs} ms`).to.equal(0)
      expect(JSON.parse(stdout)).to.deep.equal({ listen: 'resolved', addrs: 0 })
    })
  }
})
