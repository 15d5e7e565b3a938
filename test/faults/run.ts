/**
 * The network fault suite (`npm run test:faults`, as root): a node and its
 * peer in network namespaces of their own, joined by a veth pair whose link
 * goes down mid-stream, so that packets vanish with no FIN, no RST and no
 * ICMP error, as in production when a lid closes or a NAT mapping expires.
 * Every scenario runs against upstream, ours and tcp at once (each on its
 * own pair of namespaces); the figures are printed side by side, and bounds
 * are asserted for ours (and for tcp where it shows the fault was real).
 * Exits non-zero on a failed bound, and when it cannot run (no root, no
 * iproute2). A few minutes.
 *
 * Usage: `node test/faults/run.ts [--only=<scenario id prefix>,...]`
 */
import { netnsUnavailable, sweepStaleNamespaces } from '../../toolbox/netns.ts'
import { killAllOnSignals } from '../../toolbox/supervisor.ts'
import { TRANSPORTS, TRANSPORT_IDS } from '../../toolbox/transports.ts'
import { SCENARIOS } from './scenarios.ts'
import type { Scenario } from './scenarios.ts'
import type { TransportId } from '../../toolbox/transports.ts'

// the whole run takes a few minutes; past this something hangs that no
// deadline of a scenario caught
const SUITE_TIMEOUT = 10 * 60_000

const only = process.argv.find(arg => arg.startsWith('--only='))?.slice(7).split(',')
let passed = 0
let failed = 0

function print (line = ''): void {
  process.stdout.write(`${line}\n`)
}

function summary (): void {
  print(`${passed} checks passed, ${failed} failed`)
}

type Outcome = { result: any, error?: undefined } | { result?: undefined, error: string }

function table (scenario: Scenario, outcomes: Record<TransportId, Outcome>): string[] {
  const cells = scenario.rows.map(([, cell], row) => TRANSPORT_IDS.map(transport => {
    const outcome = outcomes[transport]

    if (outcome.error != null) {
      return row === 0 ? `error: ${outcome.error}` : ''
    }

    return cell(outcome.result)
  }))
  const labelWidth = Math.max(...scenario.rows.map(([label]) => label.length))
  const widths = TRANSPORT_IDS.map((transport, column) => Math.max(TRANSPORTS[transport].name.length, ...cells.map(row => row[column].length)))
  const line = (label: string, values: string[]): string => `  ${label.padEnd(labelWidth)}  ${values.map((value, i) => value.padEnd(widths[i])).join('  ')}`.trimEnd()

  return [
    line('', TRANSPORT_IDS.map(transport => TRANSPORTS[transport].name)),
    ...scenario.rows.map(([label], row) => line(label, cells[row]))
  ]
}

async function runScenario (scenario: Scenario): Promise<void> {
  const start = Date.now()
  const settled = await Promise.all(TRANSPORT_IDS.map(async (transport): Promise<Outcome> => {
    try {
      return { result: await scenario.run(transport) }
    } catch (err: any) {
      return { error: String(err?.message ?? err).split('\n')[0] }
    }
  }))
  const outcomes = Object.fromEntries(TRANSPORT_IDS.map((transport, i) => [transport, settled[i]])) as Record<TransportId, Outcome>

  print(`# ${scenario.id} (${((Date.now() - start) / 1_000).toFixed(1)} s)`)
  print(`  ${scenario.title}`)
  table(scenario, outcomes).forEach(line => { print(line) })

  for (const check of scenario.checks) {
    for (const transport of check.transports) {
      const outcome = outcomes[transport]
      const ok = outcome.error == null && check.pass(outcome.result)

      if (ok) {
        passed++
      } else {
        failed++
      }

      print(`  ${ok ? 'ok  ' : 'FAIL'} ${transport}: ${check.what}`)
    }
  }

  print()
}

async function main (): Promise<void> {
  const unavailable = await netnsUnavailable()

  if (unavailable != null) {
    process.stderr.write(`test:faults cannot run: ${unavailable}\n`)
    process.exit(1)
  }

  const swept = await sweepStaleNamespaces()

  if (swept.length > 0) {
    print(`deleted ${swept.length} namespaces left by an earlier run: ${swept.join(', ')}`)
  }

  const scenarios = SCENARIOS.filter(scenario => only == null || only.some(prefix => scenario.id.startsWith(prefix)))

  if (scenarios.length === 0) {
    throw new Error(`no scenario matches --only=${only?.join(',')}; there are ${SCENARIOS.map(s => s.id).join(', ')}`)
  }

  for (const scenario of scenarios) {
    await runScenario(scenario)
  }
}

// children are killed and namespaces deleted on the way out (see
// supervisor.ts and netns.ts): process.exit runs their exit handlers
killAllOnSignals(signal => { print(`interrupted by ${signal}`) })

setTimeout(() => {
  print(`FAIL the suite did not finish within ${SUITE_TIMEOUT / 60_000} minutes`)
  failed++
  summary()
  process.exit(1)
}, SUITE_TIMEOUT).unref()

try {
  await main()
} catch (err: any) {
  failed++
  print(`FAIL ${err?.stack ?? err}`)
}

summary()
process.exit(failed > 0 ? 1 : 0)
