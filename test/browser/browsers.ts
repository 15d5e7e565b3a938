/**
 * The browsers the suite runs in: where they are, installing Debian's when
 * they are missing and we may, and launching them headless with puppeteer
 */
import { execFile } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import puppeteer from 'puppeteer-core'
import { withDeadline } from '../fixtures/deadline.ts'
import type { Browser } from 'puppeteer-core'

export type BrowserName = 'chromium' | 'firefox'

export interface BrowserSpec {
  name: BrowserName
  executablePath: string
}

interface Known {
  env: string
  path: string
  debianPackage: string
  elsewhere: string
}

const KNOWN: Record<BrowserName, Known> = {
  chromium: {
    env: 'CHROMIUM_PATH',
    path: '/usr/bin/chromium',
    debianPackage: 'chromium',
    elsewhere: 'a Chrome or Chromium binary, e.g. "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" on macOS, "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" on Windows'
  },
  firefox: {
    env: 'FIREFOX_PATH',
    path: '/usr/bin/firefox-esr',
    debianPackage: 'firefox-esr',
    elsewhere: 'a Firefox binary, e.g. /Applications/Firefox.app/Contents/MacOS/firefox on macOS, /usr/bin/firefox on other distributions'
  }
}

// apt-get fetches and unpacks a few hundred MB
const INSTALL_TIMEOUT = 600_000
const LAUNCH_TIMEOUT = 30_000
const CLOSE_TIMEOUT = 10_000
const PROTOCOL_TIMEOUT = 60_000

// Chromium as root needs no sandbox; without the background services it
// would otherwise start, it makes no connection of its own (a closed network
// refuses them, and they would only add noise)
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

async function run (file: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(file, args, { timeout: INSTALL_TIMEOUT, killSignal: 'SIGKILL' }, (err) => {
      if (err != null) {
        reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}`))
      } else {
        resolve()
      }
    })
    child.stdout?.pipe(process.stdout)
    child.stderr?.pipe(process.stderr)
  })
}

function canInstall (): boolean {
  return process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')
}

function howToGet (names: BrowserName[]): string {
  const lines = names.map(name => `  ${name}: not found at ${KNOWN[name].path}; set ${KNOWN[name].env} to ${KNOWN[name].elsewhere}`)

  return [
    'The browser suite needs Chromium (or Chrome) and Firefox.',
    ...lines,
    `On Debian or Ubuntu, as root: apt-get install ${names.map(name => KNOWN[name].debianPackage).join(' ')} (the suite does that itself when run as root)`
  ].join('\n')
}

/**
 * Both browsers: from CHROMIUM_PATH and FIREFOX_PATH when set, else Debian's.
 * Missing ones are installed with apt-get when running as root where there is
 * one; otherwise this fails saying what to install or set
 */
export async function findBrowsers (): Promise<BrowserSpec[]> {
  const names: BrowserName[] = ['chromium', 'firefox']

  for (const name of names) {
    const given = process.env[KNOWN[name].env]

    if (given != null && given !== '' && !existsSync(given)) {
      throw new Error(`${KNOWN[name].env} is set to ${given}, which does not exist`)
    }
  }

  const pathOf = (name: BrowserName): string => {
    const given = process.env[KNOWN[name].env]
    return given != null && given !== '' ? given : KNOWN[name].path
  }
  const missing = (): BrowserName[] => names.filter(name => !existsSync(pathOf(name)))

  if (missing().length > 0 && canInstall()) {
    const packages = missing().map(name => KNOWN[name].debianPackage)
    process.stdout.write(`installing ${packages.join(' ')} with apt-get\n`)
    await run('apt-get', ['update'])
    await run('apt-get', ['install', '-y', '--no-install-recommends', ...packages])
  }

  if (missing().length > 0) {
    throw new Error(howToGet(missing()))
  }

  return names.map(name => ({ name, executablePath: pathOf(name) }))
}

export interface LaunchedBrowser {
  browser: Browser

  /**
   * Close the browser, killing it if it does not close in time, and remove
   * its profile. Never rejects
   */
  close(): Promise<void>

  /**
   * Kill the browser's process at once and remove its profile, for an exit
   * handler
   */
  kill(): void
}

/**
 * Launch `spec` headless, with a profile of its own
 */
export async function launch (spec: BrowserSpec): Promise<LaunchedBrowser> {
  const profile = spec.name === 'chromium' ? await mkdtemp(join(tmpdir(), 'cleanstop-chromium-')) : undefined
  const removeProfile = async (): Promise<void> => {
    if (profile != null) {
      await rm(profile, { recursive: true, force: true })
    }
  }
  const browser = await puppeteer.launch({
    browser: spec.name === 'chromium' ? 'chrome' : 'firefox',
    executablePath: spec.executablePath,
    headless: true,
    // puppeteer makes and removes Firefox's profile itself
    userDataDir: profile,
    args: spec.name === 'chromium' ? CHROMIUM_ARGS : [],
    // the runner cleans up on signals itself, children included
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    // puppeteer kills a browser that is not up within this
    timeout: LAUNCH_TIMEOUT,
    // and fails any one call into the browser that takes longer
    protocolTimeout: PROTOCOL_TIMEOUT
  }).catch(async (err: Error) => {
    await removeProfile()
    throw new Error(`${spec.name} (${spec.executablePath}) did not start: ${err.message}`)
  })

  const kill = (): void => {
    browser.process()?.kill('SIGKILL')

    if (profile != null) {
      // the browser may still be writing to it as it dies
      rmSync(profile, { recursive: true, force: true, maxRetries: 3 })
    }
  }

  return {
    browser,
    kill,
    async close () {
      try {
        await withDeadline(browser.close(), CLOSE_TIMEOUT, `${spec.name} closing`)
      } catch {
        kill()
      }

      await removeProfile()
    }
  }
}
