/**
 * `npm run bench -- [--quick] [--json] [--only=raw,data,buffered,idle]
 * [--transports=upstream,ours,tcp] [--counts=0,100,1000,10000] [--scale-rounds=2]
 * [--cpu-prof]`:
 * the transport against
 * `@libp2p/websockets` and `@libp2p/tcp` on loopback, listener and dialer in
 * separate processes, runs interleaved across transports so that load from
 * anything else on the machine spreads over all three
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { Child, killAll, killAllOnSignals } from '../toolbox/supervisor.ts'
import { TRANSPORTS, TRANSPORT_IDS } from '../toolbox/transports.ts'
import { openIdle } from './memory.ts'
import { measureRaw } from './raw.ts'
import { measureSetup } from './setup.ts'
import { summarize, ratio } from './stats.ts'
import { measureStop } from './stop.ts'
import { measureThroughput } from './throughput.ts'
import type { RawKind } from './raw.ts'
import type { Summary } from './stats.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { TransportId } from '../toolbox/transports.ts'

const KiB = 1024
const MiB = 1024 * KiB

const argv = new Set(process.argv.slice(2))
const quick = argv.has('--quick')
const jsonOnly = argv.has('--json')
const only = new Set(process.argv.find(a => a.startsWith('--only='))?.slice(7).split(',') ?? ['raw', 'data', 'buffered', 'idle'])
const picked = process.argv.find(a => a.startsWith('--transports='))?.slice(13).split(',')
// a subset is for profiling one transport: ratios need all three
const ACTIVE = TRANSPORT_IDS.filter(t => picked == null || picked.includes(t))
const PROFILES = new URL('./results/profiles/', import.meta.url).pathname
const ENTRY = new URL('./child.ts', import.meta.url)

/**
 * What the rows at a small `maxBufferedAmount` set it to: the sender waits on
 * backpressure all the time, so what that path costs shows
 */
const BUFFERED = [16 * KiB, 64 * KiB]

const CONFIG = quick
  ? {
      rounds: 3,
      throughputBytes: 16 * MiB,
      bufferedBytes: 8 * MiB,
      setupCount: 40,
      idleCounts: [0, 100],
      stopRounds: 1,
      scaleRounds: 1,
      rawBytes: 32 * MiB,
      exitDeadline: 5_000
    }
  : {
      rounds: 5,
      throughputBytes: 128 * MiB,
      bufferedBytes: 32 * MiB,
      setupCount: 200,
      idleCounts: [0, 100, 1000, 10_000],
      stopRounds: 3,
      scaleRounds: 2,
      rawBytes: 256 * MiB,
      exitDeadline: 10_000
    }

const countsArg = process.argv.find(a => a.startsWith('--counts='))?.slice(9)

const scaleRoundsArg = process.argv.find(a => a.startsWith('--scale-rounds='))?.slice(15)

// `--counts=` picks the idle counts of the section, for a profile at one scale
if (countsArg != null) {
  CONFIG.idleCounts = countsArg.split(',').map(Number)
}

// each round at 10,000 connections opens 60,000 of them across the three
// transports: fewer rounds for a run that checks the other rows
if (scaleRoundsArg != null) {
  CONFIG.scaleRounds = Number(scaleRoundsArg)
}

/**
 * Counts above this are the scale rows: each of their runs opens that many
 * connections, so they get `scaleRounds` rounds instead of `stopRounds`
 */
const SCALE_ABOVE = 1000

/**
 * The count the targets and the README quote
 */
const REFERENCE_IDLE = Math.min(SCALE_ABOVE, Math.max(...CONFIG.idleCounts))

/**
 * Dialing nodes per fleet process: a libp2p node in a process of its own
 * costs memory, and one process for 10,000 of them would be what is measured
 */
const FLEET_SIZE = 2_500

/**
 * No child lives longer than the whole bench may take
 */
const CHILD_DEADLINE = quick ? 120_000 : 3_600_000

/**
 * Descriptors a process may open (its soft limit): a listener holds one per
 * connection, and so does the fleet process that dials them. `npm run bench`
 * raises the soft limit to the hard one before starting
 */
function openFileLimit (): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(l => l.startsWith('Max open files'))
  const soft = line?.split(/\s{2,}/)[1]

  return soft == null || soft === 'unlimited' ? Infinity : Number(soft)
}

function log (message: string): void {
  if (!jsonOnly) {
    process.stderr.write(`${message}\n`)
  }
}

type Better = 'higher' | 'lower'

interface Figure {
  name: string
  unit: string
  better: Better
  summaries: Record<TransportId, Summary>
  /**
   * Median of each transport divided by the median of upstream and of tcp
   */
  vsUpstream: Record<TransportId, number | null>
  vsTcp: Record<TransportId, number | null>
}

type Samples = Record<string, Record<TransportId, Array<number | null | undefined>>>

const samples: Samples = {}

function record (figure: string, transport: TransportId, value: number | null | undefined): void {
  samples[figure] ??= { upstream: [], ours: [], tcp: [] }
  samples[figure][transport].push(value)
}

/**
 * The figures of one transfer, for each way of running it (`1 stream`, ...)
 */
function transferFigures (...ways: string[]): Array<{ name: string, unit: string, better: Better }> {
  return [
    { name: 'throughput', unit: 'MB/s', better: 'higher' as Better },
    { name: 'dialer CPU', unit: 'ms/MiB', better: 'lower' as Better },
    { name: 'listener CPU', unit: 'ms/MiB', better: 'lower' as Better }
  ].flatMap(figure => ways.map(way => ({ ...figure, name: `${figure.name} ${way}` })))
}

const FIGURES: Array<{ name: string, unit: string, better: Better }> = [
  ...transferFigures('1 stream', '8 streams'),
  ...transferFigures(...BUFFERED.map(bufferedWay)),
  { name: 'connection setup', unit: 'conn/s', better: 'higher' },
  { name: 'setup latency p50', unit: 'ms', better: 'lower' },
  { name: 'setup latency p99', unit: 'ms', better: 'lower' },
  { name: 'close latency p50', unit: 'ms', better: 'lower' },
  { name: 'dialer CPU per conn', unit: 'ms', better: 'lower' },
  { name: 'listener CPU per conn', unit: 'ms', better: 'lower' },
  ...CONFIG.idleCounts.filter(n => n > 0).flatMap(n => [
    { name: `RSS per idle conn (${n})`, unit: 'KiB', better: 'lower' as Better },
    { name: `heap per idle conn (${n})`, unit: 'KiB', better: 'lower' as Better }
  ]),
  ...CONFIG.idleCounts.flatMap(n => [
    { name: `node.stop() ${n} conns`, unit: 'ms', better: 'lower' as Better },
    { name: `node.stop() CPU ${n} conns`, unit: 'ms', better: 'lower' as Better },
    { name: `stop to exit ${n} conns`, unit: 'ms', better: 'lower' as Better }
  ]),
  ...CONFIG.idleCounts.filter(n => n > 0).flatMap(n => [
    { name: `listener.close() ${n} conns`, unit: 'ms', better: 'lower' as Better },
    { name: `node.stop() after close ${n}`, unit: 'ms', better: 'lower' as Better },
    { name: `close to exit ${n} conns`, unit: 'ms', better: 'lower' as Better }
  ])
]

function bufferedWay (maxBufferedAmount: number): string {
  return `1 stream, maxBufferedAmount ${maxBufferedAmount / KiB} KiB`
}

/**
 * Start child.ts in a role and wait until it serves
 */
async function startRole (role: string, args: { transport?: TransportId, kind?: RawKind, init?: WebSocketsInit }, execArgv: string[] = []): Promise<Child> {
  // each child writes a .cpuprofile when it exits by itself
  const profile = argv.has('--cpu-prof')
    ? ['--cpu-prof', `--cpu-prof-dir=${PROFILES}`, `--cpu-prof-name=${[role, args.transport ?? args.kind, Date.now()].join('-')}.cpuprofile`]
    : []
  const child = new Child(ENTRY, [role, JSON.stringify(args)], {
    name: role,
    deadlineMs: CHILD_DEADLINE,
    execArgv: ['--disable-warning=ExperimentalWarning', ...profile, ...execArgv],
    // bufferutil (native WebSocket masking) comes with our package, not with
    // upstream's: upstream's processes run as it installs on its own
    env: args.transport === 'upstream' ? { WS_NO_BUFFER_UTIL: '1' } : {}
  })
  await child.started()

  return child
}

async function startListener (transport: TransportId, init?: WebSocketsInit): Promise<{ child: Child, addr: string }> {
  const child = await startRole('listener', { transport, init }, ['--expose-gc'])
  const addr = await child.call<string>('addr')

  return { child, addr }
}

async function benchRaw (): Promise<Record<RawKind, Summary>> {
  const kinds: RawKind[] = ['ws', 'tcp']
  const pairs = await Promise.all(kinds.map(async kind => {
    const server = await startRole('raw-server', { kind })
    const client = await startRole('raw-client', { kind })
    const port = await server.call<number>('listen')
    return { kind, server, client, port }
  }))
  const runs: Record<RawKind, number[]> = { ws: [], tcp: [] }

  try {
    for (const { client, port } of pairs) {
      await measureRaw(client, port, 8 * MiB)
    }

    for (let round = 0; round < CONFIG.rounds; round++) {
      for (const { kind, client, port } of pairs) {
        const { mbps } = await measureRaw(client, port, CONFIG.rawBytes)
        runs[kind].push(mbps)
        log(`  raw ${kind} round ${round + 1}: ${mbps.toFixed(0)} MB/s`)
      }
    }
  } finally {
    await Promise.all(pairs.flatMap(({ server, client }) => [server.close(), client.close()]))
  }

  return { ws: summarize(runs.ws), tcp: summarize(runs.tcp) }
}

interface Pair {
  transport: TransportId
  listener: Child
  dialer: Child
  addr: string
}

/**
 * A listener and a dialer per transport, with `init`, for the time of `run`
 */
async function withPairs (transports: TransportId[], init: WebSocketsInit | undefined, run: (pairs: Pair[]) => Promise<void>): Promise<void> {
  const pairs: Pair[] = []

  try {
    for (const transport of transports) {
      const { child: listener, addr } = await startListener(transport, init)
      const dialer = await startRole('dialer', { transport, init })
      pairs.push({ transport, listener, dialer, addr })
    }

    await run(pairs)
  } finally {
    await Promise.all(pairs.flatMap(({ listener, dialer }) => [listener.close(), dialer.close()]))
  }
}

/**
 * Throughput and connection setup share a long-lived listener and dialer per
 * transport
 */
async function benchDataPath (): Promise<void> {
  await withPairs(ACTIVE, undefined, async (pairs) => {
    // let the JIT see every path before anything counts
    for (const { listener, dialer, addr } of pairs) {
      await measureThroughput(listener, dialer, { addr, bytes: 4 * MiB, streams: 1 })
      await measureThroughput(listener, dialer, { addr, bytes: 4 * MiB, streams: 8 })
      await measureSetup(listener, dialer, { addr, count: 10 })
    }

    for (const streams of [1, 8]) {
      for (let round = 0; round < CONFIG.rounds; round++) {
        for (const pair of pairs) {
          await transfer(streams === 1 ? '1 stream' : '8 streams', round, pair, CONFIG.throughputBytes, streams)
        }
      }
    }

    for (let round = 0; round < CONFIG.rounds; round++) {
      for (const { transport, listener, dialer, addr } of pairs) {
        const setup = await measureSetup(listener, dialer, { addr, count: CONFIG.setupCount })
        record('connection setup', transport, setup.perSecond)
        record('setup latency p50', transport, setup.p50)
        record('setup latency p99', transport, setup.p99)
        record('close latency p50', transport, setup.closeP50)
        record('dialer CPU per conn', transport, setup.dialerCpuMs)
        record('listener CPU per conn', transport, setup.listenerCpuMs)
        log(`  setup round ${round + 1} ${transport}: ${setup.perSecond.toFixed(0)} conn/s, dial p50 ${setup.p50.toFixed(2)} ms, p99 ${setup.p99.toFixed(2)} ms, close p50 ${setup.closeP50.toFixed(2)} ms, CPU per conn ${setup.dialerCpuMs.toFixed(2)} ms dialer, ${setup.listenerCpuMs.toFixed(2)} ms listener`)
      }
    }
  })
}

/**
 * One stream at each small `maxBufferedAmount`, ours against upstream (which
 * takes the same option): the CPU our backpressure path costs
 */
async function benchBuffered (): Promise<void> {
  for (const maxBufferedAmount of BUFFERED) {
    await withPairs(ACTIVE.filter(transport => transport !== 'tcp'), { maxBufferedAmount }, async (pairs) => {
      for (const { listener, dialer, addr } of pairs) {
        await measureThroughput(listener, dialer, { addr, bytes: 2 * MiB, streams: 1 })
      }

      for (let round = 0; round < CONFIG.rounds; round++) {
        for (const pair of pairs) {
          await transfer(bufferedWay(maxBufferedAmount), round, pair, CONFIG.bufferedBytes, 1)
        }
      }
    })
  }
}

/**
 * One transfer over a pair, its figures recorded under `way`
 */
async function transfer (way: string, round: number, { transport, listener, dialer, addr }: Pair, bytes: number, streams: number): Promise<void> {
  const { mbps, cpuMsPerMiB, listenerCpuMsPerMiB } = await measureThroughput(listener, dialer, { addr, bytes, streams })
  record(`throughput ${way}`, transport, mbps)
  record(`dialer CPU ${way}`, transport, cpuMsPerMiB)
  record(`listener CPU ${way}`, transport, listenerCpuMsPerMiB)
  log(`  throughput ${way} round ${round + 1} ${transport}: ${mbps.toFixed(1)} MB/s, CPU per MiB ${cpuMsPerMiB.toFixed(2)} ms dialer, ${listenerCpuMsPerMiB.toFixed(2)} ms listener`)
}

/**
 * Memory and shutdown need a fresh listener each run; the dialing peers live
 * on across runs in fleet processes, `FLEET_SIZE` nodes each
 */
async function benchIdle (): Promise<void> {
  const fleets = new Map<TransportId, Child[]>()
  const limit = openFileLimit()
  // the process's own descriptors, the runtime's and libp2p's
  const counts = CONFIG.idleCounts.filter(count => {
    const fits = count + 512 <= limit

    if (!fits) {
      log(`  ${count} connections skipped: the open file limit is ${limit} (ulimit -n)`)
    }

    return fits
  })

  const fleetsFor = async (transport: TransportId, count: number): Promise<Child[]> => {
    const own = fleets.get(transport) ?? []
    fleets.set(transport, own)

    while (own.length * FLEET_SIZE < count) {
      own.push(await startRole('fleet', { transport }))
    }

    return own
  }

  const run = async (transport: TransportId, count: number, closeListenerFirst: boolean): Promise<void> => {
    const { child: listener, addr } = await startListener(transport)
    // a stop closes every connection: give each a little on top of the base
    const exitDeadline = CONFIG.exitDeadline + count

    try {
      if (count > 0) {
        const idle = await openIdle(listener, await fleetsFor(transport, count), addr, count, FLEET_SIZE)
        record(`RSS per idle conn (${count})`, transport, idle.rssPerConn / 1024)
        record(`heap per idle conn (${count})`, transport, idle.heapPerConn / 1024)
        log(`  idle ${count} ${transport}: ${(idle.rssPerConn / 1024).toFixed(1)} KiB RSS, ${(idle.heapPerConn / 1024).toFixed(1)} KiB heap per connection (opened in ${idle.connectMs} ms)`)
      }

      const stop = await measureStop(listener, closeListenerFirst, exitDeadline)
      const exit = stop.exitMs == null ? `killed after ${exitDeadline} ms` : `${stop.exitMs.toFixed(1)} ms`

      if (closeListenerFirst) {
        record(`listener.close() ${count} conns`, transport, stop.closeMs)
        record(`node.stop() after close ${count}`, transport, stop.stopMs)
        record(`close to exit ${count} conns`, transport, stop.exitMs ?? null)
        log(`  listener.close() ${count} ${transport}: ${stop.closeMs?.toFixed(1)} ms, then node.stop() ${stop.stopMs.toFixed(1)} ms, exit ${exit}`)
      } else {
        record(`node.stop() ${count} conns`, transport, stop.stopMs)
        record(`node.stop() CPU ${count} conns`, transport, stop.cpuMs)
        record(`stop to exit ${count} conns`, transport, stop.exitMs ?? null)
        log(`  node.stop() ${count} ${transport}: ${stop.stopMs.toFixed(1)} ms (${stop.cpuMs.toFixed(0)} ms CPU), exit ${exit}`)
      }
    } catch (err: any) {
      log(`  ${transport} ${count} connections failed: ${err.message}`)
    } finally {
      listener.kill()
    }
  }

  try {
    for (let round = 0; round < CONFIG.stopRounds; round++) {
      for (const count of counts) {
        if (count > SCALE_ABOVE && round >= CONFIG.scaleRounds) {
          continue
        }

        for (const transport of ACTIVE) {
          await run(transport, count, false)
        }

        if (count === 0) {
          continue
        }

        for (const transport of ACTIVE) {
          await run(transport, count, true)
        }
      }
    }
  } finally {
    await Promise.all([...fleets.values()].flat().map(async fleet => fleet.close()))
  }
}

function figures (): Figure[] {
  return FIGURES.filter(({ name }) => samples[name] != null).map(({ name, unit, better }) => {
    const summaries = Object.fromEntries(TRANSPORT_IDS.map(t => [t, summarize(samples[name][t])])) as Record<TransportId, Summary>

    return {
      name,
      unit,
      better,
      summaries,
      vsUpstream: Object.fromEntries(TRANSPORT_IDS.map(t => [t, ratio(summaries[t].median, summaries.upstream.median)])) as Record<TransportId, number | null>,
      vsTcp: Object.fromEntries(TRANSPORT_IDS.map(t => [t, ratio(summaries[t].median, summaries.tcp.median)])) as Record<TransportId, number | null>
    }
  })
}

interface Target {
  what: string
  value: number | null
  goal: string
  met: boolean | null
}

function targets (figs: Figure[]): Target[] {
  const get = (name: string): Figure | undefined => figs.find(f => f.name === name)
  const check = (what: string, value: number | null | undefined, goal: string, test: (v: number) => boolean): Target => ({
    what,
    value: value ?? null,
    goal,
    met: value == null ? null : test(value)
  })

  return [
    check('1 stream ours/upstream', get('throughput 1 stream')?.vsUpstream.ours, '>= 1.3', v => v >= 1.3),
    check('8 streams ours/upstream', get('throughput 8 streams')?.vsUpstream.ours, '>= 1.3', v => v >= 1.3),
    check('dialer CPU 1 stream ours/upstream', get('dialer CPU 1 stream')?.vsUpstream.ours, '<= 0.7', v => v <= 0.7),
    check('dialer CPU 8 streams ours/upstream', get('dialer CPU 8 streams')?.vsUpstream.ours, '<= 0.7', v => v <= 0.7),
    check('connection setup ours/upstream', get('connection setup')?.vsUpstream.ours, '>= 1.1', v => v >= 1.1),
    check('RSS per idle conn ours/upstream', get(`RSS per idle conn (${REFERENCE_IDLE})`)?.vsUpstream.ours, '<= 1.0', v => v <= 1.0),
    check('heap per idle conn ours/upstream', get(`heap per idle conn (${REFERENCE_IDLE})`)?.vsUpstream.ours, '<= 1.0', v => v <= 1.0),
    // within 10% of tcp, or 20% for CPU: what a TCP connection carrying
    // WebSocket frames (a header, and a mask from client to server) can get
    check('1 stream ours/tcp', get('throughput 1 stream')?.vsTcp.ours, '>= 0.9', v => v >= 0.9),
    check('8 streams ours/tcp', get('throughput 8 streams')?.vsTcp.ours, '>= 0.9', v => v >= 0.9),
    check('dialer CPU 1 stream ours/tcp', get('dialer CPU 1 stream')?.vsTcp.ours, '<= 1.2', v => v <= 1.2),
    check('dialer CPU 8 streams ours/tcp', get('dialer CPU 8 streams')?.vsTcp.ours, '<= 1.2', v => v <= 1.2),
    check('listener CPU 1 stream ours/tcp', get('listener CPU 1 stream')?.vsTcp.ours, '<= 1.2', v => v <= 1.2),
    check('listener CPU 8 streams ours/tcp', get('listener CPU 8 streams')?.vsTcp.ours, '<= 1.2', v => v <= 1.2),
    check('connection setup ours/tcp', get('connection setup')?.vsTcp.ours, '>= 0.9', v => v >= 0.9),
    check('heap per idle conn ours/tcp', get(`heap per idle conn (${REFERENCE_IDLE})`)?.vsTcp.ours, '<= 1.0', v => v <= 1.0),
    check(`node.stop() ${REFERENCE_IDLE} conns ours/tcp`, get(`node.stop() ${REFERENCE_IDLE} conns`)?.vsTcp.ours, '<= 1.0', v => v <= 1.0),
    // close() waits for libp2p to see every connection close, as tcp's does:
    // that work, not the sockets, is most of its time
    check(`listener.close() ${REFERENCE_IDLE} conns ours/tcp`, get(`listener.close() ${REFERENCE_IDLE} conns`)?.vsTcp.ours, '<= 1.2', v => v <= 1.2)
  ]
}

function fmt (value: number | null | undefined, digits?: number): string {
  if (value == null) {
    return '-'
  }

  if (digits != null) {
    return value.toFixed(digits)
  }

  // three significant digits or so
  const magnitude = Math.abs(value)

  if (magnitude >= 100) {
    return value.toFixed(0)
  }

  return value.toFixed(magnitude >= 10 ? 1 : 2)
}

function cell (s: Summary): string {
  const killed = s.samples.filter(v => v == null).length
  const range = s.min === s.max ? '' : ` [${fmt(s.min)}-${fmt(s.max)}]`

  return `${fmt(s.median)}${range}${killed > 0 ? ` (${killed} killed)` : ''}`
}

function table (rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))

  return rows.map(r => r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  ')).join('\n')
}

function met (value: boolean | null): string {
  if (value == null) {
    return '?'
  }

  return value ? 'yes' : 'NO'
}

function report (figs: Figure[], raw: Record<RawKind, Summary>, goals: Target[]): string {
  const rows = [
    ['figure (median [min-max])', 'unit', ...TRANSPORT_IDS.map(t => t), 'ours/upstream', 'ours/tcp', 'upstream/tcp'],
    ...figs.map(f => [
      f.name,
      f.unit,
      ...TRANSPORT_IDS.map(t => cell(f.summaries[t])),
      fmt(f.vsUpstream.ours, 2),
      fmt(f.vsTcp.ours, 2),
      fmt(f.vsTcp.upstream, 2)
    ])
  ]

  return [
    table(rows),
    '',
    `raw limits (MB/s): ws ${cell(raw.ws)}, tcp ${cell(raw.tcp)}`,
    '',
    table([
      ['target', 'value', 'goal', 'met'],
      ...goals.map(g => [g.what, fmt(g.value, 2), g.goal, met(g.met)])
    ])
  ].join('\n')
}

async function main (): Promise<void> {
  const started = Date.now()
  log(`bench (${quick ? 'quick' : 'full'}): ${TRANSPORT_IDS.map(t => `${t} = ${TRANSPORTS[t].name}`).join(', ')}`)

  let raw: Record<RawKind, Summary> = { ws: summarize([]), tcp: summarize([]) }

  if (only.has('raw')) {
    log('raw limits')
    raw = await benchRaw()
  }

  if (only.has('data')) {
    log('throughput and connection setup')
    await benchDataPath()
  }

  if (only.has('buffered')) {
    log('throughput at a small maxBufferedAmount')
    await benchBuffered()
  }

  if (only.has('idle')) {
    log('idle connections and shutdown')
    await benchIdle()
  }

  const figs = figures()
  const goals = targets(figs)
  const result = {
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    sections: [...only],
    durationMs: Date.now() - started,
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavg: os.loadavg(),
      totalMemory: os.totalmem()
    },
    config: CONFIG,
    transports: Object.fromEntries(TRANSPORT_IDS.map(t => [t, TRANSPORTS[t].name])),
    units: { 'MB/s': '10^6 bytes per second', KiB: '1024 bytes', 'ms/MiB': 'process CPU ms (user + system) per 2^20 bytes sent' },
    figures: figs,
    raw,
    targets: goals
  }

  const dir = new URL('./results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  writeFileSync(new URL('latest.json', dir), JSON.stringify(result, null, 2) + '\n')

  if (jsonOnly) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } else {
    process.stdout.write(`\n${report(figs, raw, goals)}\n\n${result.mode} run in ${(result.durationMs / 1000).toFixed(0)} s on ${result.machine.cpus} cores, load ${result.machine.loadavg.map(l => l.toFixed(1)).join(' ')}; written to benchmarks/results/latest.json\n`)
  }
}

killAllOnSignals()

try {
  await main()
} catch (err: any) {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  killAll()
}
