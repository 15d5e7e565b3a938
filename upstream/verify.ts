/**
 * Verifies the patch series of this directory against `@libp2p/websockets`
 * as published on npm: fetches the tarball (`npm pack`), commits it in a
 * scratch repository laid out as js-libp2p's, then applies the patches one at
 * a time with `git am`, type-checking, building and linting after each, and
 * runs the reproductions against the patched build: each patch must turn its
 * defect's reproduction from DEFECT to OK and leave every OK one OK. Once all
 * are applied, the shutdown hazards, the handshake deadline on established
 * connections, the browser bundle and the interop and conformance specs must
 * pass. Prints one table; exits non-zero on any failure.
 *
 * `--quick` (for CI) runs only each patch's own reproduction, before and
 * after it, lints once at the end and leaves the interop and conformance
 * specs out. `--keep` keeps the scratch repository and says where it is.
 *
 * Usage: `node upstream/verify.ts [--quick] [--keep]`
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { REPRODUCTIONS } from '../reproductions/names.ts'
import { killAllOnSignals } from '../toolbox/supervisor.ts'
import { browserBundle, handshakeDeadline, reproduce, shutdownHazards, specs } from './checks.ts'
import { applyPatch, build, createScratch, lastCommitLines, linesSincePublished, lint, removeScratch } from './scratch.ts'
import { formatTable } from './table.ts'
import type { CheckResult, ReproductionResult } from './checks.ts'
import type { LineCounts, Scratch } from './scratch.ts'
import type { Row } from './table.ts'

const SPEC = '@libp2p/websockets@10.1.21'
const HERE = fileURLToPath(new URL('.', import.meta.url))

/**
 * The reproduction each patch must turn from DEFECT to OK, by patch number;
 * none for a patch that only adds options
 */
const FIXES: Record<string, string | undefined> = {
  '0001': 'malformed-frame',
  '0002': 'silent-client',
  '0003': 'reset',
  '0004': 'aborted-dial',
  '0005': 'failed-dial',
  '0006': 'frozen-peer',
  '0007': 'plain-http',
  '0008': 'handshake-deadline',
  '0009': 'oversize-message',
  '0010': undefined
}

const args = process.argv.slice(2)
const QUICK = args.includes('--quick')
const KEEP = args.includes('--keep')

if (args.some(arg => arg !== '--quick' && arg !== '--keep')) {
  process.stderr.write('usage: node upstream/verify.ts [--quick] [--keep]\n')
  process.exit(2)
}

killAllOnSignals()

const started = performance.now()
const rows: Row[] = []
const problems: string[] = []

function progress (message: string): void {
  process.stderr.write(`[${formatDuration(performance.now() - started)}] ${message}\n`)
}

function formatDuration (ms: number): string {
  const s = Math.round(ms / 1000)

  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

function fail (row: Row, problem: string): void {
  row.failed = true
  problems.push(`${row.patch}: ${problem}`)
}

async function runAll (): Promise<Map<string, ReproductionResult>> {
  const results = new Map<string, ReproductionResult>()

  for (const name of REPRODUCTIONS) {
    const result = await reproduce(name)
    progress(`  ${name}: ${result.verdict} (${result.detail})`)
    results.set(name, result)
  }

  return results
}

function countOk (results: Map<string, ReproductionResult>): string {
  return `${[...results.values()].filter(result => result.verdict === 'OK').length}/${REPRODUCTIONS.length}`
}

async function subjectOf (patch: string): Promise<string> {
  const text = await readFile(join(HERE, patch), 'utf8')
  const subject = /^Subject: (?:\[PATCH[^\]]*\] )?((?:.*)(?:\n .*)*)/m.exec(text)?.[1]

  return subject?.replace(/\n /g, ' ') ?? patch
}

const patches = (await readdir(HERE)).filter(name => /^\d{4}-.*\.patch$/.test(name)).sort()
const numbers = patches.map(patch => patch.slice(0, 4))

if (numbers.join() !== Object.keys(FIXES).join()) {
  throw new Error(`The patches (${numbers.join(', ')}) are not the ones verify.ts knows (${Object.keys(FIXES).join(', ')})`)
}

for (const name of Object.values(FIXES)) {
  if (name != null && !REPRODUCTIONS.includes(name)) {
    throw new Error(`No reproduction ${name}`)
  }
}

/**
 * Apply a patch, count its lines, then type-check and build (and lint, in a
 * full run): false if any of it failed
 */
async function applyAndBuild (scratch: Scratch, patch: string, row: Row, totals: LineCounts): Promise<boolean> {
  try {
    await applyPatch(scratch, join(HERE, patch))
    const lines = await lastCommitLines(scratch)
    totals.added += lines.added
    totals.deleted += lines.deleted
    row.lines = `+${lines.added} -${lines.deleted}`
    await build(scratch)

    if (!QUICK) {
      await lint(scratch)
    }

    return true
  } catch (err: any) {
    fail(row, err.message)
    return false
  }
}

/**
 * Every reproduction OK before a patch is still OK after it
 */
function checkNoRegression (before: Map<string, ReproductionResult>, after: Map<string, ReproductionResult>, row: Row): void {
  for (const [name, result] of before) {
    const now = after.get(name)

    if (result.verdict === 'OK' && now?.verdict !== 'OK') {
      fail(row, `${name} was OK before this patch and is ${now?.verdict} after it: ${now?.detail}`)
    }
  }
}

/**
 * The checks once every patch is applied; in a quick run the lint and the
 * reproductions left out until then come first
 */
function finalChecks (scratch: Scratch): Array<[string, () => Promise<CheckResult>]> {
  const checks: Array<[string, () => Promise<CheckResult>]> = []

  if (QUICK) {
    checks.push(['lint', async () => {
      await lint(scratch)
      return { ok: true, detail: 'aegir lint' }
    }])
    checks.push(['reproductions', async () => {
      const results = await runAll()
      const failed = [...results.values()].filter(result => result.verdict !== 'OK')

      return { ok: failed.length === 0, detail: `${countOk(results)} OK${failed.map(result => `; ${result.name}: ${result.verdict} (${result.detail})`).join('')}` }
    }])
  }

  checks.push(['shutdown hazards', shutdownHazards])
  checks.push(['handshake deadline', handshakeDeadline])
  checks.push(['browser bundle', async () => browserBundle(scratch.packageDir)])

  if (!QUICK) {
    checks.push(['interop, conformance', async () => specs(['test/interop.spec.ts', 'test/compliance.spec.ts'])])
  }

  return checks
}

/**
 * Apply one patch and judge it: its reproduction DEFECT before and OK after,
 * and, in a full run, every reproduction OK before still OK. Resolves with the
 * verdicts after it (none in a quick run), or undefined if it did not apply
 * or build
 */
async function verifyPatch (scratch: Scratch, patch: string, current: Map<string, ReproductionResult>, totals: LineCounts): Promise<Map<string, ReproductionResult> | undefined> {
  const number = patch.slice(0, 4)
  const fixes = FIXES[number]
  const row: Row = { patch: `${number} ${await subjectOf(patch)}`, check: fixes ?? '-', before: '-', after: '-' }
  rows.push(row)
  progress(patch)

  // a full run has every verdict of the build before this patch already
  let before = fixes == null ? undefined : current.get(fixes)

  if (QUICK && fixes != null) {
    before = await reproduce(fixes)
    progress(`  before: ${before.name}: ${before.verdict} (${before.detail})`)
  }

  row.before = before?.verdict ?? '-'

  if (!await applyAndBuild(scratch, patch, row, totals)) {
    return
  }

  let results = current

  if (QUICK && fixes != null) {
    const after = await reproduce(fixes)
    row.after = after.verdict
    progress(`  after: ${after.name}: ${after.verdict} (${after.detail})`)
  } else if (!QUICK) {
    results = await runAll()
    row.after = fixes == null ? '-' : results.get(fixes)?.verdict
    row.detail = `${countOk(current)} -> ${countOk(results)}`
    checkNoRegression(current, results, row)
  }

  if (fixes != null && row.before !== 'DEFECT') {
    fail(row, `${fixes} should be DEFECT before this patch, is ${row.before}: ${before?.detail}`)
  }

  if (fixes != null && row.after !== 'OK') {
    fail(row, `${fixes} should be OK after this patch, is ${row.after}`)
  }

  return results
}

async function verify (scratch: Scratch): Promise<void> {
  await build(scratch)
  let current = new Map<string, ReproductionResult>()
  const totals: LineCounts = { added: 0, deleted: 0 }

  if (!QUICK) {
    progress('reproductions against the published source')
    current = await runAll()
    const published: Row = { patch: `(published) ${SPEC}`, detail: countOk(current) }
    rows.push(published)

    for (const result of current.values()) {
      if (result.verdict !== 'DEFECT') {
        fail(published, `${result.name} is ${result.verdict} before any patch, so it proves nothing: ${result.detail}`)
      }
    }
  }

  for (const patch of patches) {
    const after = await verifyPatch(scratch, patch, current, totals)

    if (after == null) {
      return
    }

    current = after
  }

  const net = await linesSincePublished(scratch)
  rows.push({
    patch: `all ${patches.length} patches`,
    lines: `+${totals.added} -${totals.deleted}`,
    detail: `${totals.added + totals.deleted} lines in the patches, ${net.added + net.deleted} (+${net.added} -${net.deleted}) in their sum against the published source`
  })

  if (!QUICK) {
    const failed = [...current.values()].filter(result => result.verdict !== 'OK')
    const row: Row = { patch: 'all applied', check: 'reproductions', after: failed.length === 0 ? 'PASS' : 'FAIL', detail: `${countOk(current)} OK` }
    rows.push(row)

    for (const result of failed) {
      fail(row, `${result.name} is ${result.verdict} with every patch applied: ${result.detail}`)
    }
  }

  for (const [name, check] of finalChecks(scratch)) {
    progress(name)
    const result = await check().catch((err: any): CheckResult => ({ ok: false, detail: err?.stack ?? String(err) }))
    const row: Row = { patch: 'all applied', check: name, after: result.ok ? 'PASS' : 'FAIL', detail: result.detail.split('\n')[0] }
    rows.push(row)

    if (!result.ok) {
      fail(row, `${name}: ${result.detail}`)
    }
  }
}

progress(`${QUICK ? 'quick' : 'full'} verification of ${patches.length} patches against ${SPEC}`)
const scratch = await createScratch(SPEC)
progress(`${SPEC} from the registry, in ${scratch.repo}`)

// every reproduction, hazard and spec from here on runs against this build
process.env.UPSTREAM_WEBSOCKETS = scratch.packageDir

try {
  await verify(scratch)
} catch (err: any) {
  problems.push(err?.stack ?? String(err))
} finally {
  if (KEEP) {
    progress(`scratch repository kept in ${scratch.repo}`)
  } else {
    await removeScratch(scratch)
  }
}

process.stdout.write(`${formatTable(rows)}\n`)
process.stdout.write(`\n${QUICK ? 'quick' : 'full'} verification ${problems.length === 0 ? 'passed' : 'FAILED'} in ${formatDuration(performance.now() - started)}\n`)

for (const problem of problems) {
  process.stdout.write(`- ${problem}\n`)
}

process.exitCode = problems.length === 0 ? 0 : 1
