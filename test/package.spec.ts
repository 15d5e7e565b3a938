/**
 * The package as npm publishes it: `npm pack` holds what it should, and a
 * fresh project that installs the tarball can run two nodes over /ws and
 * typecheck against it. Needs dist/ built (`npm test` builds it first; alone,
 * run `npx aegir build`) and a warm npm cache (`npm ci`)
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { expect } from 'aegir/chai'
import { PACKAGE_NAME, packageRoot } from './fixtures/package-root.ts'

/**
 * Everything the tarball may hold, by top-level entry (dist/ by its first
 * folder): the code, its sources for source maps, and the documents
 */
const EXPECTED_ENTRIES = [
  'CHANGELOG.md',
  'LICENSE',
  'LICENSE-APACHE',
  'LICENSE-MIT',
  'README.md',
  'dist/src',
  'package.json',
  'src'
]

/**
 * What the consumer project installs beside the tarball, at the versions the
 * repository's devDependencies resolved to, which `npm ci` put in the cache
 */
const PEERS = ['libp2p', '@chainsafe/libp2p-noise', '@chainsafe/libp2p-yamux']

// each step gets its own deadline; together they stay within the suite's
const PACK_TIMEOUT = 60_000
const INSTALL_TIMEOUT = 90_000
const RUN_TIMEOUT = 30_000
const TSC_TIMEOUT = 60_000

interface RunResult {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  timedOut: boolean
}

/**
 * Run a command to completion or until `timeout`, then SIGKILL. Commands
 * started through their `#!/usr/bin/env node` line (npm, tsc) get the Node.js
 * running this test, not whatever else is on the PATH
 */
async function run (file: string, args: string[], options: { cwd: string, timeout: number }): Promise<RunResult> {
  return new Promise(resolve => {
    execFile(file, args, {
      cwd: options.cwd,
      timeout: options.timeout,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
      env: {
        ...cleanEnv(),
        PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`
      }
    }, (err: any, stdout, stderr) => {
      // a non-zero exit gives err.code as a number, a failed spawn as a string
      const code = typeof err?.code === 'number' ? err.code : null

      resolve({
        code: err == null ? 0 : code,
        signal: err?.signal ?? null,
        stdout,
        stderr,
        timedOut: err?.killed === true
      })
    })
  })
}

/**
 * Our environment without the settings `npm test` passes to its scripts, so
 * the nested npm acts on the consumer project as if run by hand
 */
function cleanEnv (): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_globalconfig'])

  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_') || keep.has(name)))
}

function explain (what: string, result: RunResult): string {
  const how = result.timedOut ? 'timed out and was killed' : `exited with ${result.signal ?? result.code}`

  return `${what} ${how}\n--- stdout\n${result.stdout.slice(-4_000)}\n--- stderr\n${result.stderr.slice(-4_000)}`
}

function installedVersion (root: string, name: string): string {
  return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
}

/**
 * Two nodes in the consumer project: listen on loopback /ws, echo a message,
 * stop both. No process.exit: the process must end by itself
 */
const TWO_NODES = `import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { webSockets } from '${PACKAGE_NAME}'
import { createLibp2p } from 'libp2p'

const PROTOCOL = '/consumer/echo/1.0.0'
const MESSAGE = 'hello over websockets'

const createNode = () => createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0/ws'] },
  transports: [webSockets()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false }
})

const [dialer, listener] = await Promise.all([createNode(), createNode()])

await listener.handle(PROTOCOL, async (stream) => {
  for await (const chunk of stream) {
    stream.send(chunk.subarray())
  }
  await stream.close()
})

const addr = listener.getMultiaddrs()[0]
const stream = await dialer.dialProtocol(addr, PROTOCOL)
stream.send(new TextEncoder().encode(MESSAGE))
await stream.close()

let received = ''
for await (const chunk of stream) {
  received += new TextDecoder().decode(chunk.subarray())
}

await Promise.all([dialer.stop(), listener.stop()])

if (received === MESSAGE) {
  console.log('echo ok via ' + addr.toString())
} else {
  console.log('echo mismatch: ' + JSON.stringify(received))
  process.exitCode = 1
}
`

/**
 * Uses the package's types in ways that only compile if they were found: a
 * typed option, the factory as libp2p takes it, and a wrong option that must
 * be an error (with `any` types the expectation itself would fail)
 */
const CONSUMER_TS = `import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { webSockets } from '${PACKAGE_NAME}'
import { createLibp2p } from 'libp2p'
import type { WebSocketsComponents, WebSocketsInit } from '${PACKAGE_NAME}'
import type { Transport } from '@libp2p/interface'

const init: WebSocketsInit = {
  closeTimeout: 1_000,
  handshakeTimeout: 5_000,
  maxPayload: 65_537
}
const transport: (components: WebSocketsComponents) => Transport = webSockets(init)

export const node = await createLibp2p({
  transports: [transport],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()]
})

// @ts-expect-error closeTimeout is a number
webSockets({ closeTimeout: 'soon' })
`

function tsconfig (moduleResolution: 'node16' | 'bundler', skipLibCheck: boolean): string {
  return JSON.stringify({
    compilerOptions: {
      module: moduleResolution === 'node16' ? 'node16' : 'esnext',
      moduleResolution,
      target: 'es2022',
      lib: ['es2024', 'dom'],
      strict: true,
      noEmit: true,
      skipLibCheck
    },
    files: ['consumer.ts']
  }, null, 2)
}

describe('the npm package', function () {
  this.timeout(180_000)

  const root = packageRoot()
  const tsc = join(root, 'node_modules', '.bin', 'tsc')
  let workDir: string
  let project: string
  let tarball: string
  let installed = false

  before(async function () {
    if (!existsSync(join(root, 'dist', 'src', 'index.js'))) {
      throw new Error('dist/src is not built: run `npx aegir build` first')
    }

    workDir = await mkdtemp(join(tmpdir(), 'cleanstop-package-'))
    project = join(workDir, 'consumer')
    await mkdir(project)

    const packed = await run('npm', ['pack', '--json', '--pack-destination', workDir], { cwd: root, timeout: PACK_TIMEOUT })
    expect(packed.code, explain('npm pack', packed)).to.equal(0)

    // npm may print notices before the JSON
    const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')))
    tarball = join(workDir, filename)
  })

  after(async function () {
    if (workDir != null) {
      await rm(workDir, { recursive: true, force: true })
    }
  })

  it('holds exactly dist/src, src, README.md, the licences, CHANGELOG.md and package.json', async () => {
    const listed = await run('tar', ['tzf', tarball], { cwd: workDir, timeout: PACK_TIMEOUT })
    expect(listed.code, explain('tar tzf', listed)).to.equal(0)

    const files = listed.stdout.split('\n')
      .filter(line => line !== '' && !line.endsWith('/'))
      .map(line => line.replace(/^package\//, ''))
    const entries = new Set(files.map(file => file.split('/').slice(0, file.startsWith('dist/') ? 2 : 1).join('/')))

    expect([...entries].sort(), 'top-level entries of the tarball').to.deep.equal(EXPECTED_ENTRIES)
    expect(files.filter(file => file.startsWith('dist/test/'))).to.be.empty()

    // every path the manifest points at is in the tarball
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    const pointedAt = [
      manifest.types,
      manifest.exports['.'].types,
      manifest.exports['.'].import,
      ...Object.keys(manifest.browser ?? {}),
      ...Object.values<string>(manifest.browser ?? {})
    ].map(path => path.replace(/^\.\//, ''))

    expect(files).to.include.members(pointedAt)
  })

  it('installs with libp2p, noise and yamux into a fresh project', async () => {
    await writeFile(join(project, 'package.json'), JSON.stringify({
      name: 'consumer',
      version: '0.0.0',
      private: true,
      type: 'module'
    }, null, 2))

    const install = await run('npm', [
      'install', '--prefer-offline', '--no-audit', '--no-fund',
      tarball,
      ...PEERS.map(name => `${name}@${installedVersion(root, name)}`)
    ], { cwd: project, timeout: INSTALL_TIMEOUT })
    expect(install.code, explain('npm install', install)).to.equal(0)

    expect(existsSync(join(project, 'node_modules', PACKAGE_NAME, 'dist', 'src', 'index.js'))).to.be.true()
    installed = true
  })

  it('runs two nodes over /ws there, and the process exits by itself', async function () {
    if (!installed) {
      this.skip()
    }

    await writeFile(join(project, 'two-nodes.mjs'), TWO_NODES)

    const result = await run(process.execPath, ['two-nodes.mjs'], { cwd: project, timeout: RUN_TIMEOUT })

    expect(result.timedOut, explain(`the two-node script did not exit within ${RUN_TIMEOUT} ms:`, result)).to.be.false()
    expect(result.code, explain('the two-node script', result)).to.equal(0)
    expect(result.stdout).to.match(/^echo ok via \/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\//m)
  })

  const resolvesTypes = (moduleResolution: 'node16' | 'bundler') => async function (this: Mocha.Context): Promise<void> {
    if (!installed) {
      this.skip()
    }

    await writeFile(join(project, 'consumer.ts'), CONSUMER_TS)
    await writeFile(join(project, `tsconfig.${moduleResolution}.json`), tsconfig(moduleResolution, true))

    const checked = await run(tsc, ['-p', `tsconfig.${moduleResolution}.json`], { cwd: project, timeout: TSC_TIMEOUT })
    expect(checked.code, explain(`tsc (${moduleResolution})`, checked)).to.equal(0)
  }

  it('resolves its types under moduleResolution node16', resolvesTypes('node16'))

  it('resolves its types under moduleResolution bundler', resolvesTypes('bundler'))

  it('has declaration files that typecheck without skipLibCheck', async function () {
    if (!installed) {
      this.skip()
    }

    await writeFile(join(project, 'consumer.ts'), CONSUMER_TS)
    await writeFile(join(project, 'tsconfig.strict.json'), tsconfig('node16', false))

    // other packages' declarations may have errors of their own: only ours and
    // the consumer's count
    const checked = await run(tsc, ['-p', 'tsconfig.strict.json'], { cwd: project, timeout: TSC_TIMEOUT })
    const ours = checked.stdout.split('\n').filter(line => line.startsWith(`node_modules/${PACKAGE_NAME}/`) || line.startsWith('consumer.ts'))

    expect(checked.timedOut, explain('tsc (no skipLibCheck)', checked)).to.be.false()
    expect(ours, checked.stdout).to.be.empty()
  })
})
