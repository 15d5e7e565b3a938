/**
 * What upstream/verify.ts runs against the build of upstream that
 * `UPSTREAM_WEBSOCKETS` points at: the reproductions, and once every patch is
 * applied the shutdown hazards, the handshake deadline on established
 * connections, the browser bundle and the interop and conformance specs
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stop } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { bundleForBrowser } from '../test/fixtures/browser-bundle.ts'
import { certificate } from '../test/fixtures/certificate.ts'
import { runHazard } from '../toolbox/hazard-run.ts'
import { HAZARDS } from '../toolbox/hazards.ts'
import { createNode } from '../toolbox/node.ts'
import { closedByServer, halfHttpClient } from '../toolbox/stalled-clients.ts'
import { Child } from '../toolbox/supervisor.ts'
import { delay, within } from '../toolbox/time.ts'
import type { Deadlines } from '../toolbox/hazard-run.ts'
import type { Libp2p } from '@libp2p/interface'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export type Verdict = 'OK' | 'DEFECT' | 'ERROR'

export interface ReproductionResult {
  name: string
  verdict: Verdict
  detail: string
}

export interface CheckResult {
  ok: boolean
  detail: string
}

// a reproduction bounds each of its children at 15 s; this only catches a
// parent that hangs
const REPRODUCTION_DEADLINE_MS = 60_000

/**
 * Run `reproductions/<name>.ts upstream` and read its verdict line
 */
export async function reproduce (name: string): Promise<ReproductionResult> {
  const child = new Child(new URL(`../reproductions/${name}.ts`, import.meta.url), ['upstream'], {
    name,
    deadlineMs: REPRODUCTION_DEADLINE_MS
  })
  await child.exited

  const verdict = /^upstream: (OK|DEFECT|ERROR) \((.*)\)$/m.exec(child.output)

  if (verdict == null) {
    return { name, verdict: 'ERROR', detail: `no verdict, ${child.describeExit()}: ${child.output.trim().split('\n').slice(-3).join(' / ')}` }
  }

  return { name, verdict: verdict[1] as Verdict, detail: verdict[2] }
}

// as test/process-exit.spec.ts: libp2p keeps about a second of timers after
// stop(), a node on @libp2p/tcp exits within that
const HAZARD_DEADLINES: Deadlines = {
  setupMs: 10_000,
  stopMs: 5_000,
  exitMs: 8_000
}

/**
 * Every shutdown hazard of toolbox/hazards.ts: `node.stop()` resolves and the
 * process then exits by itself
 */
export async function shutdownHazards (): Promise<CheckResult> {
  const failures: string[] = []

  for (const hazard of HAZARDS) {
    const result = await runHazard(hazard, 'upstream', HAZARD_DEADLINES)

    if (result.error != null) {
      failures.push(`${hazard.id}: ${result.error.split('\n')[0]}`)
    } else if (result.stopHang) {
      failures.push(`${hazard.id}: node.stop() still pending after ${HAZARD_DEADLINES.stopMs} ms`)
    } else if (result.exitHang) {
      failures.push(`${hazard.id}: still running ${HAZARD_DEADLINES.exitMs} ms after node.stop()`)
    }
  }

  return failures.length === 0
    ? { ok: true, detail: `${HAZARDS.length}/${HAZARDS.length} hazards: node.stop() resolved and the process exited by itself` }
    : { ok: false, detail: `${HAZARDS.length - failures.length}/${HAZARDS.length} hazards; ${failures.join('; ')}` }
}

// short, so that outliving it several times over takes little time
const HANDSHAKE_TIMEOUT_MS = 500

/**
 * With `handshakeTimeout` set, the listener destroys a socket that stalls in
 * its HTTP request, and leaves alone the `/ws` and `/tls/ws` connections that
 * completed the upgrade (the TLS one reaches the deadline's timer only through
 * the socket it wraps)
 */
export async function handshakeDeadline (): Promise<CheckResult> {
  const nodes: Libp2p[] = []

  try {
    const listener = await createNode({
      transport: 'upstream',
      listen: ['/ip4/127.0.0.1/tcp/0/ws', '/ip4/127.0.0.1/tcp/0/tls/ws'],
      init: {
        https: { cert: certificate.cert, key: certificate.key },
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS
      },
      services: { ping: ping() }
    })
    nodes.push(listener)
    const dialer = await createNode({ listen: [], init: { websocket: { ca: certificate.cert } } })
    nodes.push(dialer)

    const addrs = [WebSockets, WebSocketsSecure].map(matcher => {
      const ma = listener.getMultiaddrs().find(ma => matcher.exactMatch(ma))

      if (ma == null) {
        throw new Error('the listener has no address for one of /ws and /tls/ws')
      }

      return ma
    })
    const connections = await Promise.all(addrs.map(async ma => dialer.dial(ma, { force: true, signal: AbortSignal.timeout(5_000) })))

    const start = performance.now()
    const stalled = await halfHttpClient(addrs[0])
    const stalledClosed = await within(closedByServer(stalled).then(() => Math.round(performance.now() - start)), HANDSHAKE_TIMEOUT_MS * 4)
    stalled.destroy()
    await delay(Math.max(0, HANDSHAKE_TIMEOUT_MS * 3 - (performance.now() - start)))

    const usable = await Promise.all(connections.map(async connection => {
      try {
        const stream = await connection.newStream('/ipfs/ping/1.0.0', { signal: AbortSignal.timeout(5_000) })
        await stream.close()
        return true
      } catch {
        return false
      }
    }))
    const detail = `a stalled HTTP request was ${stalledClosed == null ? `still open after ${HANDSHAKE_TIMEOUT_MS * 4} ms` : `destroyed after ${stalledClosed} ms`}; ` +
      `after ${HANDSHAKE_TIMEOUT_MS * 3} ms the /ws connection was ${usable[0] ? 'usable' : 'gone'}, the /tls/ws one ${usable[1] ? 'usable' : 'gone'}`

    return { ok: stalledClosed != null && usable.every(Boolean), detail: `handshakeTimeout ${HANDSHAKE_TIMEOUT_MS} ms: ${detail}` }
  } catch (err: any) {
    return { ok: false, detail: err.message }
  } finally {
    await stop(...nodes)
  }
}

/**
 * The build bundled for browsers, as a user's bundler does it: the `browser`
 * field keeps `ws` and Node.js built-ins out
 */
export async function browserBundle (packageDir: string): Promise<CheckResult> {
  const bundle = await bundleForBrowser(join(packageDir, 'dist', 'src', 'index.js'), packageDir)
  const ws = bundle.inputs.filter(input => input.includes('/node_modules/ws/'))
  const mapped = bundle.inputs.some(input => input.endsWith('/dist/src/websocket.browser.js'))

  if (bundle.errors.length > 0) {
    return { ok: false, detail: `esbuild failed: ${bundle.errors.join('; ')}` }
  }

  return ws.length === 0 && mapped
    ? { ok: true, detail: `esbuild, platform browser: ${bundle.inputs.length} files, websocket.browser.js in, no ws` }
    : { ok: false, detail: `esbuild, platform browser: ${ws.length} files of ws in the bundle, websocket.browser.js ${mapped ? 'in' : 'not in'} it` }
}

const MOCHA = join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js')

/**
 * Specs of ours that take upstream from the toolbox's transport table, run
 * from their TypeScript with mocha
 */
export async function specs (files: string[]): Promise<CheckResult> {
  const child = new Child(MOCHA, ['--timeout', '60000', '--exit', ...files.map(file => join(ROOT, file))], {
    name: 'mocha',
    deadlineMs: 300_000
  })
  const exit = await child.exited
  const passing = /(\d+) passing/.exec(child.output)?.[1] ?? '0'
  const failing = /(\d+) failing/.exec(child.output)?.[1] ?? '0'
  const names = files.map(file => file.replace(/^test\//, '')).join(', ')

  return exit.code === 0 && failing === '0'
    ? { ok: true, detail: `${names}: ${passing} passing` }
    : { ok: false, detail: `${names}: ${passing} passing, ${failing} failing, ${child.describeExit()}: ${child.output.trim().split('\n').slice(-15).join('\n')}` }
}
