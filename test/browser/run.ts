/**
 * The browser suite: our transport in headless Chromium and Firefox, dialing
 * a Node.js node of ours in a child process. Prints a line per test and per
 * browser, then `N passed, N failed`; exits non-zero on any failure. The
 * browsers and every child are closed or killed however the run ends.
 *
 * Needs dist/ built (`npm run test:browser` builds it first).
 * Usage: `node test/browser/run.ts`, with CHROMIUM_PATH and FIREFOX_PATH to
 * use browsers other than Debian's
 */
import { withDeadline } from '../fixtures/deadline.ts'
import { startNodeProcess } from '../fixtures/node-process-handle.ts'
import { packageRoot } from '../fixtures/package-root.ts'
import { findBrowsers, launch } from './browsers.ts'
import { PAGE_API } from './page-api.ts'
import { servePage } from './page-server.ts'
import { TESTS } from './suite.ts'
import type { BrowserSpec, LaunchedBrowser } from './browsers.ts'
import type { Context } from './suite.ts'
import type { NodeProcess } from '../fixtures/node-process-handle.ts'
import type { Page } from 'puppeteer-core'

// the slowest test (4 MiB echoed in Firefox) takes a few seconds
const TEST_TIMEOUT = 30_000
const CALL_TIMEOUT = 20_000
const PAGE_TIMEOUT = 15_000
const RESET_TIMEOUT = 5_000

// the whole run takes well under a minute; past this something hangs that
// no single deadline caught, and everything is killed
const SUITE_TIMEOUT = 300_000

const children = new Set<NodeProcess>()
const browsers = new Set<LaunchedBrowser>()
let passed = 0
let failed = 0

function killAll (): void {
  children.forEach(child => { child.kill() })
  browsers.forEach(browser => { browser.kill() })
}

function print (line: string): void {
  process.stdout.write(`${line}\n`)
}

function fail (what: string, err: unknown, details: string[] = []): void {
  failed++
  print(`FAIL ${what}`)
  print(`     ${err instanceof Error ? err.message.split('\n').join('\n     ') : String(err)}`)
  details.forEach(line => { print(`     ${line}`) })
}

function summary (): void {
  print(`${passed} passed, ${failed} failed`)
}

// an 'exit' handler may only do synchronous work: kill, do not close
process.once('exit', killAll)

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    print(`interrupted by ${signal}`)
    killAll()
    process.exit(1)
  })
}

setTimeout(() => {
  fail('the suite', new Error(`did not finish within ${SUITE_TIMEOUT} ms`))
  summary()
  killAll()
  process.exit(1)
}, SUITE_TIMEOUT).unref()

async function startFarSide (): Promise<NodeProcess> {
  const child = await startNodeProcess('websockets')
  children.add(child)

  return child
}

function killFarSide (child: NodeProcess): void {
  child.kill()
  children.delete(child)
}

/**
 * Load the page and wait for its API
 */
async function openPage (page: Page, url: string): Promise<void> {
  await page.goto(url, { timeout: PAGE_TIMEOUT })
  await page.waitForFunction((api: string) => api in globalThis, { timeout: PAGE_TIMEOUT }, PAGE_API)
}

function caller (page: Page): Context['call'] {
  return async (name, ...args) => {
    return withDeadline(page.evaluate(async (api: string, name: string, args: unknown[]) => {
      return (globalThis as any)[api][name](...args)
    }, PAGE_API, name, args), CALL_TIMEOUT, `${name}() in the page`)
  }
}

async function runIn (spec: BrowserSpec, url: string, farSide: NodeProcess): Promise<void> {
  let launched: LaunchedBrowser

  try {
    launched = await launch(spec)
  } catch (err) {
    fail(`${spec.name}: launching ${spec.executablePath}`, err)
    return
  }

  browsers.add(launched)

  try {
    const version = await launched.browser.version()
    print(`# ${spec.name}: ${version} (${spec.executablePath})`)

    const page = await launched.browser.newPage()
    const logs: string[] = []
    page.on('console', message => {
      if (message.type() === 'error' || message.type() === 'warn') {
        logs.push(`console.${message.type()}: ${message.text()}`)
      }
    })
    page.on('pageerror', err => { logs.push(`page error: ${err instanceof Error ? err.message : String(err)}`) })

    await openPage(page, url)
    const call = caller(page)

    for (const test of TESTS) {
      const own: NodeProcess[] = []
      const notes: string[] = []
      const context: Context = {
        call,
        farSide,
        ownFarSide: async () => {
          const child = await startFarSide()
          own.push(child)
          return child
        },
        note: (text) => { notes.push(text) }
      }
      const start = Date.now()
      logs.length = 0

      try {
        await withDeadline(test.run(context), TEST_TIMEOUT, test.name)
        passed++
        print(`ok   ${spec.name}: ${test.name} (${Date.now() - start} ms)${notes.length > 0 ? ` - ${notes.join(', ')}` : ''}`)
      } catch (err) {
        fail(`${spec.name}: ${test.name} (${Date.now() - start} ms)`, err, [...notes, ...logs])
        // whatever the test left running in the page goes with it
        await openPage(page, url)
      } finally {
        own.forEach(killFarSide)
      }

      await withDeadline(call('reset'), RESET_TIMEOUT, 'reset() in the page').catch(async () => {
        await openPage(page, url)
      })
    }
  } catch (err) {
    fail(`${spec.name}: the page`, err)
  } finally {
    await launched.close()
    browsers.delete(launched)
  }
}

async function main (): Promise<void> {
  const specs = await findBrowsers()
  const [server, farSide] = await Promise.all([
    servePage(packageRoot()),
    startFarSide()
  ])

  try {
    for (const spec of specs) {
      await runIn(spec, server.url, farSide)
    }
  } finally {
    killFarSide(farSide)
    await server.close()
  }
}

try {
  await main()
} catch (err) {
  fail('the suite', err)
}

summary()
// whatever may still hold the event loop (a server a failed start left
// open) must not keep the run alive; the exit handler kills the rest
process.exit(failed > 0 ? 1 : 0)
