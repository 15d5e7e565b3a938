/**
 * Runs the same shutdown hazards against upstream `@libp2p/websockets`, ours
 * and `@libp2p/tcp` (the reference), each in fresh child processes, and prints
 * how long `node.stop()` took and how long the process then needed to exit.
 *
 * Usage: `node demo/demo.ts [--json[=path]] [--concurrency=n]`. With `--json`
 * the JSON goes to stdout and the table to stderr; with `--json=path` the JSON
 * goes to the file and the table to stdout
 */
import { writeFileSync } from 'node:fs'
import { version as libp2pVersion } from 'libp2p/version'
import { runHazard } from '../toolbox/hazard-run.ts'
import { HAZARDS } from '../toolbox/hazards.ts'
import { killAll, killAllOnSignals } from '../toolbox/supervisor.ts'
import { TRANSPORTS, TRANSPORT_IDS } from '../toolbox/transports.ts'
import { formatTable } from './table.ts'
import type { Deadlines, Result } from '../toolbox/hazard-run.ts'
import type { Hazard } from '../toolbox/hazards.ts'
import type { TransportId } from '../toolbox/transports.ts'

const DEADLINES: Deadlines = {
  setupMs: 10_000,
  stopMs: 5_000,
  exitMs: 5_000
}

// the whole demo, whatever the transports under test do
const DEMO_DEADLINE_MS = 55_000

interface Options {
  json?: string
  concurrency: number
}

interface Job {
  hazard: Hazard
  transport: TransportId
}

const options = parseOptions(process.argv.slice(2))
const started = performance.now()

// a hazard row at a time across transports, so a slow transport does not
// bunch its long scenarios together
const jobs: Job[] = HAZARDS.flatMap(hazard => TRANSPORT_IDS.map(transport => ({ hazard, transport })))
const results: Result[] = []
const running = new Set<Job>()
const progress = createProgress()
let next = 0

killAllOnSignals((signal) => {
  progress.clear()
  process.stderr.write(`\ninterrupted by ${signal}, child processes killed\n`)
})

// unref'd: it never keeps the demo alive itself
const deadline = AbortSignal.timeout(DEMO_DEADLINE_MS)
deadline.addEventListener('abort', killAll)

await Promise.all(Array.from({ length: Math.min(options.concurrency, jobs.length) }, async () => {
  while (next < jobs.length && !deadline.aborted) {
    const job = jobs[next++]
    running.add(job)
    progress.update()

    let result = await runHazard(job.hazard, job.transport, DEADLINES)
    running.delete(job)

    // figures taken while killAll() ran are not the transport's
    if (deadline.aborted) {
      result = {
        hazard: job.hazard.id,
        transport: job.transport,
        stopHang: false,
        exitHang: false,
        cutOff: true
      }
    }

    results.push(result)
    progress.finished(result)
  }
}))

progress.clear()

const elapsedMs = performance.now() - started
const versions = {
  node: process.version,
  libp2p: libp2pVersion
}

const table = [
  `Shutdown hazards: libp2p ${versions.libp2p} nodes (noise + yamux) on Node.js ${versions.node}, loopback`,
  `each cell: node.stop() ms / ms from stop resolving until the process exits by itself (deadlines ${DEADLINES.stopMs / 1000}s / ${DEADLINES.exitMs / 1000}s)`,
  '',
  formatTable(results, { deadlines: DEADLINES, color: options.json !== '-' && process.stdout.isTTY }),
  '',
  'HANG = still not done at the deadline, then killed; ! = stop rejected',
  'libp2p keeps ~1s of its own timers after stop: the @libp2p/tcp exit time is the floor, not zero',
  `${results.length} scenarios, ${options.concurrency} at a time, in ${(elapsedMs / 1000).toFixed(1)}s`
].join('\n') + '\n'

// a stop that rejected is a figure in the table; a setup that failed is not
const errors = results.filter(result => result.error != null && result.stopMs == null)

for (const { hazard, transport, error } of errors) {
  process.stderr.write(`${hazard}/${transport} failed: ${error}\n`)
}

if (deadline.aborted) {
  process.stderr.write(`the demo deadline of ${DEMO_DEADLINE_MS / 1000}s ran out: ${jobs.length - results.length + results.filter(result => result.cutOff === true).length} scenarios cut off or not run\n`)
}

const json = JSON.stringify({
  versions,
  deadlines: DEADLINES,
  elapsedMs: Math.round(elapsedMs),
  concurrency: options.concurrency,
  transports: Object.fromEntries(TRANSPORT_IDS.map(id => [id, TRANSPORTS[id].name])),
  hazards: Object.fromEntries(HAZARDS.map(hazard => [hazard.id, hazard.label])),
  results: HAZARDS.flatMap(hazard => TRANSPORT_IDS.map(transport => {
    const result = results.find(r => r.hazard === hazard.id && r.transport === transport)

    return {
      hazard: hazard.id,
      transport,
      stopMs: round(result?.stopMs),
      exitMs: round(result?.exitMs),
      stopHang: result?.stopHang ?? false,
      exitHang: result?.exitHang ?? false,
      error: result == null || result.cutOff === true ? 'not run within the demo deadline' : result.error ?? null
    }
  }))
}, null, 2) + '\n'

if (options.json === '-') {
  process.stderr.write(table)
  process.stdout.write(json)
} else {
  if (options.json != null) {
    writeFileSync(options.json, json)
  }

  process.stdout.write(table)
}

process.exitCode = deadline.aborted || errors.length > 0 ? 1 : 0

function round (value?: number): number | null {
  return value == null ? null : Math.round(value)
}

function parseOptions (args: string[]): Options {
  const options: Options = { concurrency: 4 }

  for (const arg of args) {
    const [name, value] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg]

    if (name === '--json') {
      options.json = value ?? '-'
    } else if (name === '--concurrency' && Number(value) >= 1) {
      options.concurrency = Math.floor(Number(value))
    } else {
      process.stderr.write(`unknown option ${arg}\nusage: node demo/demo.ts [--json[=path]] [--concurrency=n]\n`)
      process.exit(2)
    }
  }

  return options
}

interface Progress {
  update(): void
  finished(result: Result): void
  clear(): void
}

/**
 * One line rewritten in place on a terminal, a plain line per finished
 * scenario otherwise (CI logs, pipes)
 */
function createProgress (): Progress {
  const tty = process.stderr.isTTY
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`.padStart(6)
  const count = (): string => `[${String(results.length).padStart(2)}/${jobs.length}]`
  // short enough for a few to fit on one terminal line
  const describe = (job: { hazard: Hazard | string, transport: TransportId }): string => {
    const hazard = typeof job.hazard === 'string' ? job.hazard : job.hazard.id

    return `${hazard}/${job.transport}`
  }

  let ticker: ReturnType<typeof setInterval> | undefined

  const draw = (): void => {
    const line = `${count()} ${elapsed()}  running: ${[...running].map(describe).join(', ')}`
    process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 80) - 1)}`)
  }

  return {
    update: () => {
      if (tty) {
        ticker ??= setInterval(draw, 250).unref()
        draw()
      }
    },
    finished: (result) => {
      if (tty) {
        draw()
        return
      }

      process.stderr.write(`${count()} ${elapsed()}  ${describe(result)}: ${summary(result)}\n`)
    },
    clear: () => {
      clearInterval(ticker)

      if (tty) {
        process.stderr.write('\r\x1b[2K')
      }
    }
  }
}

function summary (result: Result): string {
  if (result.cutOff === true) {
    return 'cut off by the demo deadline'
  }

  if (result.stopHang) {
    return 'stop hang'
  }

  if (result.stopMs == null) {
    return `error: ${result.error?.split('\n')[0]}`
  }

  const exit = result.exitHang ? 'hang' : `${Math.round(result.exitMs ?? 0)}ms`

  return `stop ${Math.round(result.stopMs)}ms, exit ${exit}`
}
