/**
 * A scratch git repository laid out as js-libp2p's, holding
 * `packages/transport-websockets/` as published on npm: the patches of this
 * directory apply to it with `git am`, and it builds with this repository's
 * TypeScript and dependencies (a `node_modules` symlink)
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * Where the package lives in js-libp2p, so that the patches' paths are a
 * maintainer's
 */
export const PACKAGE_PATH = 'packages/transport-websockets'

// tsc, lint and git am each finish in seconds; anything longer is stuck
const COMMAND_TIMEOUT_MS = 180_000

export interface Scratch {
  /**
   * The temporary directory holding everything below
   */
  dir: string

  /**
   * The git repository
   */
  repo: string

  /**
   * The package in it, which `UPSTREAM_WEBSOCKETS` points at once built
   */
  packageDir: string
}

export interface LineCounts {
  added: number
  deleted: number
}

/**
 * Run a command; resolves with its stdout, rejects with the end of its output
 */
export async function run (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, {
      cwd,
      env: { ...process.env, ...env },
      timeout: COMMAND_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024
    }, (err, stdout, stderr) => {
      if (err != null) {
        const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-20).join('\n')
        reject(new Error(`${command} ${args.join(' ')} failed (${err.killed ? 'timed out' : `exit code ${err.code}`})\n${output}`))
        return
      }

      resolve(stdout)
    })
  })
}

/**
 * Fetch `spec` from the npm registry (`npm pack`) and commit its files, less
 * the build it ships, as the first commit of a fresh repository
 */
export async function createScratch (spec: string): Promise<Scratch> {
  const dir = await mkdtemp(join(tmpdir(), 'upstream-verify-'))
  const repo = join(dir, 'repo')
  const packageDir = join(repo, PACKAGE_PATH)

  await run('npm', ['pack', spec, '--pack-destination', dir, '--silent'], dir)
  const tarball = (await readdir(dir)).find(name => name.endsWith('.tgz'))

  if (tarball == null) {
    throw new Error(`npm pack ${spec} left no tarball in ${dir}`)
  }

  await run('tar', ['xzf', tarball], dir)
  await mkdir(packageDir, { recursive: true })

  // dist/ is the published build: ours is made from the patched src/
  for (const entry of await readdir(join(dir, 'package'))) {
    if (entry !== 'dist') {
      await cp(join(dir, 'package', entry), join(packageDir, entry), { recursive: true })
    }
  }

  await run('git', ['init', '--quiet'], repo)
  await run('git', ['config', 'user.name', 'upstream verify'], repo)
  await run('git', ['config', 'user.email', 'verify@localhost'], repo)
  await run('git', ['add', '--all'], repo)
  await run('git', ['commit', '--quiet', '--message', `chore: ${spec} as published`], repo)

  // what builds it stays out of the repository, so every patch applies to
  // the published files alone
  await writeFile(join(repo, '.git', 'info', 'exclude'), 'node_modules\ndist\ntsconfig.json\n')
  await symlink(await realpath(join(ROOT, 'node_modules')), join(packageDir, 'node_modules'))
  await writeFile(join(packageDir, 'tsconfig.json'), JSON.stringify({
    // upstream's own tsconfig extends aegir's too
    extends: 'aegir/src/config/tsconfig.aegir.json',
    compilerOptions: {
      outDir: 'dist',
      rootDir: '.',
      composite: false,
      incremental: false
    },
    include: ['src']
  }, null, 2))

  return { dir, repo, packageDir }
}

/**
 * `git am` one patch; a patch that does not apply is aborted and rejects
 */
export async function applyPatch (scratch: Scratch, patch: string): Promise<void> {
  try {
    await run('git', ['am', '--quiet', patch], scratch.repo)
  } catch (err) {
    await run('git', ['am', '--abort'], scratch.repo).catch(() => {})
    throw err
  }
}

/**
 * Lines the last commit added and deleted
 */
export async function lastCommitLines (scratch: Scratch): Promise<LineCounts> {
  return countLines(await run('git', ['diff', '--numstat', 'HEAD~1', 'HEAD'], scratch.repo))
}

/**
 * Lines added and deleted since the published source
 */
export async function linesSincePublished (scratch: Scratch): Promise<LineCounts> {
  const published = (await run('git', ['rev-list', '--max-parents=0', 'HEAD'], scratch.repo)).trim()

  return countLines(await run('git', ['diff', '--numstat', published, 'HEAD'], scratch.repo))
}

function countLines (numstat: string): LineCounts {
  const counts = { added: 0, deleted: 0 }

  for (const line of numstat.trim().split('\n').filter(line => line !== '')) {
    const [added, deleted] = line.split('\t')
    counts.added += Number(added)
    counts.deleted += Number(deleted)
  }

  return counts
}

/**
 * Type-check and build `src/` into `dist/` from scratch
 */
export async function build (scratch: Scratch): Promise<void> {
  await rm(join(scratch.packageDir, 'dist'), { recursive: true, force: true })
  await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], scratch.packageDir)
}

/**
 * `aegir lint` in the package, as upstream's CI runs it (eslint and the
 * README's code blocks), with this repository's aegir
 */
export async function lint (scratch: Scratch): Promise<void> {
  await run(process.execPath, [join(ROOT, 'node_modules', 'aegir', 'src', 'index.js'), 'lint'], scratch.packageDir)
}

export async function removeScratch (scratch: Scratch): Promise<void> {
  await rm(scratch.dir, { recursive: true, force: true })
}
