import { fork } from 'node:child_process'
import type { Command, Report } from './messages.ts'
import type { ChildProcess } from 'node:child_process'

// keep the end of a child's output to explain a crash, not all of it
const OUTPUT_TAIL = 2_000

// every child still running, so nothing outlives the demo
const live = new Set<ChildProcess>()

/**
 * SIGKILL every child, frozen ones included (a stopped process still dies of
 * SIGKILL), and wake them too in case one is only continued
 */
export function killAll (): void {
  for (const child of live) {
    child.kill('SIGKILL')
    child.kill('SIGCONT')
  }
}

/**
 * A script of this folder run in a child process, spoken to over IPC
 */
export class Child {
  readonly name: string
  readonly exited: Promise<void>
  private readonly process: ChildProcess
  private readonly reports: Report[]
  private output: string
  private exitStatus?: string
  private wake?: () => void

  constructor (script: string, args: string[], name: string) {
    this.name = name
    this.reports = []
    this.output = ''
    this.process = fork(new URL(script, import.meta.url), args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    live.add(this.process)

    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_TAIL)
    }
    this.process.stdout?.on('data', keep)
    this.process.stderr?.on('data', keep)

    this.process.on('message', (report: Report) => {
      this.reports.push(report)
      this.wake?.()
    })

    this.exited = new Promise(resolve => {
      const onExit = (status: string): void => {
        live.delete(this.process)
        this.exitStatus ??= status
        this.wake?.()
        resolve()
      }

      this.process.once('exit', (code, signal) => { onExit(signal ?? `code ${code}`) })
      this.process.once('error', (err) => { onExit(err.message) })
    })
  }

  get pid (): number | undefined {
    return this.process.pid
  }

  send (command: Command): void {
    if (this.process.connected) {
      this.process.send(command)
    }
  }

  /**
   * The next report of this type, or undefined if none came within
   * `timeoutMs`. Throws if the child failed or exited first
   */
  async next <T extends Report['type']> (type: T, timeoutMs: number): Promise<Extract<Report, { type: T }> | undefined> {
    const deadline = performance.now() + timeoutMs

    while (true) {
      const failed = this.reports.find(report => report.type === 'failed')

      if (failed?.type === 'failed') {
        throw new Error(`${this.name} failed: ${failed.error}`)
      }

      const index = this.reports.findIndex(report => report.type === type)

      if (index !== -1) {
        return this.reports.splice(index, 1)[0] as Extract<Report, { type: T }>
      }

      if (this.exitStatus != null) {
        throw new Error(`${this.name} exited (${this.exitStatus}) before reporting "${type}"\n${this.output.trim()}`)
      }

      const remaining = deadline - performance.now()

      if (remaining <= 0) {
        return undefined
      }

      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, remaining)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = undefined
    }
  }

  /**
   * Like `next` but a timeout is a failure of the setup
   */
  async expect <T extends Report['type']> (type: T, timeoutMs: number): Promise<Extract<Report, { type: T }>> {
    const report = await this.next(type, timeoutMs)

    if (report == null) {
      throw new Error(`${this.name} did not report "${type}" within ${timeoutMs}ms`)
    }

    return report
  }

  /**
   * Whether the child exited within `timeoutMs`
   */
  async waitExit (timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined

    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>(resolve => {
        timer = setTimeout(() => { resolve(false) }, timeoutMs)
      })
    ])
    clearTimeout(timer)

    return exited
  }

  /**
   * Stop the process where it is: its sockets stay open but nothing answers
   */
  freeze (): void {
    this.process.kill('SIGSTOP')
  }

  kill (): void {
    if (live.has(this.process)) {
      this.process.kill('SIGKILL')
      this.process.kill('SIGCONT')
    }
  }
}
