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
import { startRemoteNode } from '../../toolbox/remote-node.ts'
import { killAllOnSignals } from '../../toolbox/supervisor.ts'
import { withDeadline } from '../fixtures/deadline.ts'
import { packageRoot } from '../fixtures/package-root.ts'
import { findBrowsers, launch } from './browsers.ts'
import { PAGE_API } from './page-api.ts'
import { servePage } from './page-server.ts'
import { TESTS } from './suite.ts'
import type { BrowserSpec, LaunchedBrowser } from './browsers.ts'
import type { Context } from './suite.ts'
import type { RemoteNode } from '../../toolbox/remote-node.ts'
import type { Page } from 'puppeteer-core'

// the slowest test (4 MiB echoed in Firefox) takes a few seconds
const TEST_TIMEOUT = 30_000
const CALL_TIMEOUT = 20_000
const PAGE_TIMEOUT = 15_000
const RESET_TIMEOUT = 5_000
const FAR_SIDE_START_TIMEOUT = 10_000

// libp2p refuses more than 5 connections a second from one host by default,
// and the suite dials the far side from 127.0.0.1 once per test
const FAR_SIDE_INBOUND_LIMIT = 100

// the whole run takes well under a minute; past this something hangs that
// no single deadline caught, and everything is killed
const SUITE_TIMEOUT = 300_000

const browsers = new Set<LaunchedBrowser>()
let passed = 0
let failed = 0

// the far sides are the supervisor's: it kills them when we exit
function killBrowsers (): void {
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
process.once('exit', killBrowsers)

killAllOnSignals(signal => {
  print(`interrupted by ${signal}`)
  killBrowsers()
})

setTimeout(() => {
  fail('the suite', new Error(`did not finish within ${SUITE_TIMEOUT} ms`))
  summary()
  // the exit handlers kill the browsers and the far sides
  process.exit(1)
}, SUITE_TIMEOUT).unref()

/**
 * A Node.js node of ours in a child process, reporting its connections; the
 * supervisor kills it at `deadlineMs` if nobody did before
 */
async function startFarSide (name: string, deadlineMs: number): Promise<RemoteNode> {
  return startRemoteNode('ours', {
    name,
    deadlineMs,
    readyMs: FAR_SIDE_START_TIMEOUT,
    reportConnections: true,
    inboundLimit: FAR_SIDE_INBOUND_LIMIT
  })
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

async function runIn (spec: BrowserSpec, url: string, farSide: RemoteNode): Promise<void> {
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
      const own: RemoteNode[] = []
      const notes: string[] = []
      const context: Context = {
        call,
        farSide,
        ownFarSide: async () => {
          const farSide = await startFarSide('the test\'s own far side', TEST_TIMEOUT)
          own.push(farSide)
          return farSide
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
        own.forEach(({ child }) => { child.kill() })
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
    startFarSide('the far side', SUITE_TIMEOUT)
  ])

  try {
    for (const spec of specs) {
      await runIn(spec, server.url, farSide)
    }
  } finally {
    farSide.child.kill()
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
