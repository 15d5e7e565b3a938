/**
 * The built package bundled for browsers the way users bundle it: esbuild for
 * the browser platform, and rollup with `@rollup/plugin-node-resolve`
 * `{ browser: true }`. Both must take the `browser` field of package.json, so
 * that nothing of `ws` or of Node.js ends up in the bundle and dials use the
 * browser's WebSocket. Needs dist/ built (`npm test` builds it first; alone,
 * run `npx aegir build --no-bundle`)
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { nodeResolve } from '@rollup/plugin-node-resolve'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { rollup } from 'rollup'
import { bundleForBrowser } from './fixtures/browser-bundle.ts'
import { withDeadline } from './fixtures/deadline.ts'
import { packageRoot } from './fixtures/package-root.ts'
import type { BrowserBundle } from './fixtures/browser-bundle.ts'
import type { Transport } from '@libp2p/interface'
import type { RollupLog } from 'rollup'

const root = packageRoot()
const entry = join(root, 'dist', 'src', 'index.js')
const DIST_SRC = join(root, 'dist', 'src') + sep
const WS = `${sep}node_modules${sep}ws${sep}`

// each bundler takes well under a second here
const BUNDLE_TIMEOUT = 20_000

/**
 * Files of `ws`, in a list of absolute paths
 */
function wsFiles (files: string[]): string[] {
  return files.filter(file => file.includes(WS))
}

/**
 * Our own files, relative to dist/src
 */
function ours (files: string[]): string[] {
  return files.filter(file => file.startsWith(DIST_SRC)).map(file => file.slice(DIST_SRC.length)).sort()
}

/**
 * `ours` holds the browser mappings of package.json and not what they replace
 */
function expectBrowserVersions (files: string[]): void {
  expect(files).to.include.members(['data-frames.browser.js', 'listener.browser.js', 'web-socket.browser.js'])
  expect(files).to.not.include('data-frames.js')
  expect(files).to.not.include('listener.js')
  expect(files).to.not.include('web-socket.js')
}

/**
 * The bundle's `webSockets`, loaded in Node.js with `WebSocket` standing in
 * for the browser's global: a browser module reads `globalThis.WebSocket`
 * once, when it is evaluated
 */
async function loadWithGlobalWebSocket (bundle: BrowserBundle, WebSocket: unknown): Promise<(init?: object) => (components: any) => Transport> {
  const dir = await mkdtemp(join(tmpdir(), 'cleanstop-bundle-'))
  const file = join(dir, 'bundle.mjs')
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket')

  try {
    await writeFile(file, bundle.code)
    Object.defineProperty(globalThis, 'WebSocket', { value: WebSocket, configurable: true, writable: true })
    const module = await import(pathToFileURL(file).href)

    return module.webSockets
  } finally {
    if (saved != null) {
      Object.defineProperty(globalThis, 'WebSocket', saved)
    }

    await rm(dir, { recursive: true, force: true })
  }
}

describe('the package bundled for browsers', function () {
  this.timeout(60_000)

  before(function () {
    if (!existsSync(entry)) {
      throw new Error(`${entry} is missing: build first (npx aegir build --no-bundle)`)
    }
  })

  describe('by esbuild, platform "browser"', () => {
    let bundle: BrowserBundle

    before(async () => {
      bundle = await withDeadline(bundleForBrowser(entry, root), BUNDLE_TIMEOUT, 'the esbuild bundle')
    })

    it('resolves every import, and leaves no Node.js built-in out', () => {
      // esbuild refuses to resolve a Node.js built-in for browsers: one shows
      // up as an error, or as an external import
      expect(bundle.errors, 'build errors').to.deep.equal([])
      expect(bundle.externals, 'external imports').to.deep.equal([])
    })

    it('holds no file of ws', () => {
      expect(wsFiles(bundle.inputs)).to.deep.equal([])
    })

    it('holds the browser versions of our files', () => {
      expectBrowserVersions(ours(bundle.inputs))
    })

    it('dials with the global WebSocket', async () => {
      expect(bundle.errors, 'build errors').to.deep.equal([])

      const urls: string[] = []
      const refusal = new Error('the global WebSocket was called')
      const webSockets = await loadWithGlobalWebSocket(bundle, class {
        constructor (url: string) {
          urls.push(url)
          throw refusal
        }
      })
      const transport = webSockets()({ logger: defaultLogger(), events: new TypedEventEmitter() })

      await expect(transport.dial(multiaddr('/ip4/127.0.0.1/tcp/9/ws'), {
        upgrader: {} as any,
        signal: AbortSignal.timeout(5_000)
      })).to.eventually.be.rejectedWith(refusal.message)
      expect(urls).to.deep.equal(['ws://127.0.0.1:9'])
    })
  })

  describe('by rollup with @rollup/plugin-node-resolve { browser: true }', () => {
    let modules: string[]
    let externals: string[]
    let warnings: RollupLog[]

    before(async () => {
      warnings = []
      const bundle = await withDeadline(rollup({
        input: entry,
        plugins: [nodeResolve({ browser: true })],
        // a few dependencies of @libp2p/utils are CommonJS, which users
        // bundle with @rollup/plugin-commonjs; without it rollup would stop at
        // their exports. What ends up in the bundle does not depend on it
        shimMissingExports: true,
        onwarn: (warning) => { warnings.push(warning) }
      }), BUNDLE_TIMEOUT, 'the rollup bundle')

      try {
        // every module rollup loaded, before tree-shaking
        const loaded = bundle.cache?.modules ?? []
        modules = loaded.map(module => module.id)
        externals = loaded.flatMap(module => Object.entries(module.resolvedIds)
          .filter(([, resolved]) => resolved.external !== false)
          .map(([source]) => `${module.id}: ${source}`))
      } finally {
        await bundle.close()
      }
    })

    it('resolves every import, and leaves no Node.js built-in out', () => {
      expect(modules).to.not.be.empty()
      // an import rollup cannot resolve, a built-in among them, is external
      expect(externals, 'external imports').to.deep.equal([])
      expect(warnings.filter(w => w.code === 'UNRESOLVED_IMPORT').map(w => w.message), 'unresolved imports').to.deep.equal([])
    })

    it('holds no file of ws', () => {
      expect(wsFiles(modules)).to.deep.equal([])
    })

    it('holds the browser versions of our files, so the WebSocket is the global one', () => {
      expectBrowserVersions(ours(modules))
    })
  })
})
