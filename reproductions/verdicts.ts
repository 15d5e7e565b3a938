/**
 * The command line every reproduction shares:
 *
 * `node reproductions/<name>.ts [upstream|ours]` runs the scenario against
 * each transport chosen (both by default), each in its own child process with
 * a hard deadline, and prints one verdict line per transport. The child is the
 * same script run as `<name>.ts --scenario <transport>`. Imported by all.ts,
 * a reproduction runs the same and indents its lines under its name
 */
import { fileURLToPath } from 'node:url'
import { Child } from '../toolbox/supervisor.ts'
import type { ChildOptions, Received } from '../toolbox/supervisor.ts'
import type { TransportId } from '../toolbox/transports.ts'

export interface Verdict {
  /**
   * true: the defect did not show; false: it did; undefined: the run proved
   * nothing (the setup failed)
   */
  ok?: boolean
  detail: string
}

export interface Reproduction {
  /**
   * The reproduction's `import.meta.url`
   */
  script: string

  /**
   * Runs in the child: bring the defect about against this transport and
   * report what happened as JSON lines on stdout
   */
  scenario(transport: TransportId): Promise<void>

  /**
   * Runs in the parent: watch the child and say what its run shows
   */
  judge(child: Child, transport: TransportId): Promise<Verdict>

  /**
   * Options of the child; the deadline defaults to 15 s
   */
  child?: ChildOptions
}

const TRANSPORTS: TransportId[] = ['upstream', 'ours']
const CHILD_DEADLINE_MS = 15_000

export async function reproduce (reproduction: Reproduction): Promise<void> {
  const args = process.argv.slice(2)

  if (args[0] === '--scenario') {
    await reproduction.scenario(parseTransport(args[1]))
    return
  }

  if (args.length > 1 || (args.length === 1 && !isTransport(args[0]))) {
    process.stderr.write(`usage: node ${new URL(reproduction.script).pathname} [upstream|ours]\n`)
    process.exit(2)
  }

  const transports = args.length === 0 ? TRANSPORTS : [args[0] as TransportId]

  // in parallel, so the whole run stays within one child deadline
  const verdicts = await Promise.all(transports.map(async transport => {
    const child = new Child(new URL(reproduction.script), ['--scenario', transport], {
      deadlineMs: CHILD_DEADLINE_MS,
      ...reproduction.child
    })

    try {
      return await reproduction.judge(child, transport)
    } catch (err: any) {
      return { detail: err instanceof NoReport ? err.message : `judging failed: ${err?.message ?? err}` }
    } finally {
      child.kill()
      await child.exited
    }
  }))

  // run from all.ts, the lines go under the reproduction's name
  const indent = process.argv[1] === fileURLToPath(reproduction.script) ? '' : '  '

  transports.forEach((transport, i) => {
    const { ok, detail } = verdicts[i]
    const label = { true: 'OK', false: 'DEFECT', undefined: 'ERROR' }[`${ok}`]
    process.stdout.write(`${indent}${transport}: ${label} (${detail})\n`)
  })

  // upstream showing the defect is the expected outcome; ours must not
  if (verdicts.some((verdict, i) => verdict.ok == null || (transports[i] === 'ours' && verdict.ok !== true))) {
    process.exitCode = 1
  }
}

/**
 * A verdict for a child that did not report what the judge waited for
 */
export function noReport (child: Child, what: string): Verdict {
  const output = child.output.trim().split('\n').slice(-3).join(' / ')

  return { detail: `no "${what}" report, ${child.describeExit()}${output === '' ? '' : `: ${output}`}` }
}

/**
 * A report missing, so the run proves nothing: the verdict says why
 */
class NoReport extends Error {}

/**
 * The next report of this type; if none comes within `ms`, the judging ends
 * with the `noReport` verdict
 */
export async function reported (child: Child, type: string, ms: number): Promise<Received> {
  const message = await child.next(type, ms)

  if (message == null) {
    throw new NoReport(noReport(child, type).detail)
  }

  return message
}

function isTransport (arg: unknown): arg is TransportId {
  return TRANSPORTS.includes(arg as TransportId)
}

function parseTransport (arg: unknown): TransportId {
  if (!isTransport(arg)) {
    throw new Error(`Unknown transport "${arg}"`)
  }

  return arg
}

// libp2p keeps about a second of its own timers after stop(): a node on
// @libp2p/tcp exits within that
const EXIT_DEADLINE_MS = 6_000
const STOP_DEADLINE_MS = 8_000

/**
 * The verdict for a child that reports `setup` once the hazard is in place,
 * then `stopped` with `stopMs` once `node.stop()` resolved, and then must exit
 * by itself
 */
export async function judgeExit (child: Child, setup: string, describe?: (event: Received) => string): Promise<Verdict> {
  const ready = await reported(child, setup, 11_000)
  const stopped = await child.next('stopped', STOP_DEADLINE_MS)

  if (stopped == null) {
    return child.describeExit() === 'still running'
      ? { ok: false, detail: `node.stop() did not resolve within ${STOP_DEADLINE_MS} ms` }
      : noReport(child, 'stopped')
  }

  const exit = await child.waitExit(EXIT_DEADLINE_MS)
  const stop = `${describe == null ? '' : `${describe(ready)}; `}node.stop() resolved in ${stopped.stopMs} ms`

  // what kept it alive, as seen 500 ms after stop
  const alive = await child.next('alive', 0)
  const resources = Object.entries(alive?.resources ?? {}).map(([name, count]) => `${name} x${count}`).join(', ')

  if (exit == null) {
    return { ok: false, detail: `${stop}, but the process was still running ${EXIT_DEADLINE_MS} ms later; active handles after stop: ${resources}` }
  }

  const afterStop = Math.round(exit.at - stopped.at)

  if (exit.killed) {
    return afterStop >= 3_000
      ? { ok: false, detail: `${stop}, but the process was still running ${afterStop} ms later, at the child deadline; active handles after stop: ${resources}` }
      : { detail: `${stop}, then the child deadline came ${afterStop} ms later` }
  }

  if (exit.code !== 0) {
    return noReport(child, 'a clean exit')
  }

  return { ok: true, detail: `${stop}, then the process exited by itself ${afterStop} ms later` }
}

/**
 * A `{ ms, error }` report of a dial that should have failed
 */
export function describeDial (event: Received): string {
  return event.error == null
    ? `dial succeeded after ${event.ms} ms`
    : `dial rejected after ${event.ms} ms with ${event.error}`
}
