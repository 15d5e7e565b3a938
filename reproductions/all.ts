/**
 * Every reproduction, one after the other (they time things, and the machine
 * may be small), each printing its verdict lines under its name.
 *
 * Usage: `node reproductions/all.ts [upstream|ours]`
 */
import { spawn } from 'node:child_process'

export const REPRODUCTIONS = [
  'malformed-frame',
  'silent-client',
  'frozen-peer',
  'aborted-dial',
  'failed-dial',
  'reset',
  'handshake-deadline',
  'oversize-message'
]

// each reproduction bounds itself well below this
const SCRIPT_DEADLINE_MS = 30_000

let failed = false

for (const name of REPRODUCTIONS) {
  process.stdout.write(`${name}\n`)

  const code = await new Promise<number | null>(resolve => {
    const child = spawn(process.execPath, [new URL(`./${name}.ts`, import.meta.url).pathname, ...process.argv.slice(2)], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    const timer = setTimeout(() => { child.kill('SIGTERM') }, SCRIPT_DEADLINE_MS)

    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      process.stdout.write(chunk.replace(/^(?=.)/gm, '  '))
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

  failed ||= code !== 0
}

process.exitCode = failed ? 1 : 0
