/**
 * Running a reproduction in a child process with a hard deadline. The child
 * leads its own process group, so killing the group also reaches any peer it
 * forked, frozen (SIGSTOP) or not
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import type { ChildProcess } from 'node:child_process'

// keep the end of a child's stderr to explain a crash, not all of it
const STDERR_TAIL = 8_000

// process groups still to kill, so nothing outlives the script
const groups = new Set<number>()

/**
 * SIGKILL a whole group, and SIGCONT it in case a member is frozen and only
 * continued. Gone already is fine
 */
function killGroup (pgid: number): void {
  for (const signal of ['SIGKILL', 'SIGCONT'] as const) {
    try {
      process.kill(-pgid, signal)
    } catch {
      // the group is gone already
    }
  }

  groups.delete(pgid)
}

function killAll (): void {
  for (const pgid of [...groups]) {
    killGroup(pgid)
  }
}

let cleanupInstalled = false

/**
 * Kill every group when we exit, however we go. Installed by the first child,
 * so that only the process that starts children handles these signals
 */
function installCleanup (): void {
  if (cleanupInstalled) {
    return
  }

  cleanupInstalled = true
  process.on('exit', killAll)

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(128 + constants.signals[signal])
    })
  }
}

/**
 * A line of JSON the child printed on stdout: `{ "event": name, ...data }`
 */
export interface ChildEvent {
  event: string
  [key: string]: any

  /**
   * ms since the child was started, when the parent read the line
   */
  at: number
}

export interface ChildExit {
  code: number | null
  signal: string | null

  /**
   * ms since the child was started
   */
  at: number

  /**
   * Whether we killed it (deadline or end of the run)
   */
  killed: boolean
}

export interface ChildOptions {
  /**
   * SIGKILL the child's whole group after this many ms
   */
  deadlineMs: number
  execArgv?: string[]
  env?: NodeJS.ProcessEnv
}

/**
 * A script in its own process group, its stdout read as JSON event lines
 */
export class Child {
  readonly exited: Promise<ChildExit>
  private readonly process: ChildProcess
  private readonly started: number
  private readonly events: ChildEvent[]
  private readonly deadline: ReturnType<typeof setTimeout>
  private stderrTail: string
  private exit?: ChildExit
  private killed: boolean
  private wake?: () => void

  constructor (script: string | URL, args: string[], options: ChildOptions) {
    installCleanup()
    this.started = performance.now()
    this.events = []
    this.stderrTail = ''
    this.killed = false
    this.process = spawn(process.execPath, [...options.execArgv ?? [], script instanceof URL ? script.pathname : script, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env }
    })

    if (this.process.pid != null) {
      groups.add(this.process.pid)
    }

    let partial = ''
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''

      for (const line of lines) {
        this.onLine(line)
      }
    })
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL)
    })

    this.deadline = setTimeout(() => { this.kill() }, options.deadlineMs)

    // the last lines of output can arrive after 'exit': wait for the pipes to
    // end, briefly, since a forked peer may hold them open
    const outputEnded = Promise.all([this.process.stdout, this.process.stderr].map(async stream => {
      await new Promise(resolve => stream?.once('close', resolve))
    }))

    this.exited = new Promise(resolve => {
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(this.deadline)
        const at = this.now()
        // a frozen peer it forked is still in its group
        if (this.process.pid != null) {
          killGroup(this.process.pid)
        }

        void Promise.race([outputEnded, new Promise(resolve => setTimeout(resolve, 500))]).then(() => {
          this.exit ??= { code, signal, at, killed: this.killed }
          this.wake?.()
          resolve(this.exit)
        })
      }

      this.process.once('exit', onExit)
      this.process.once('error', () => { onExit(null, null) })
    })
  }

  get stderr (): string {
    return this.stderrTail
  }

  /**
   * The first line of an uncaught error in stderr, e.g. `RangeError: Invalid
   * WebSocket frame: invalid opcode 3`
   */
  get crash (): string | undefined {
    return this.stderrTail.split('\n').find(line => /^\s*(\w*Error|Uncaught)\b/.test(line))?.trim()
  }

  now (): number {
    return Math.round(performance.now() - this.started)
  }

  /**
   * The next event with this name, or undefined if the child exited or
   * `timeoutMs` passed first
   */
  async next (name: string, timeoutMs: number): Promise<ChildEvent | undefined> {
    const until = performance.now() + timeoutMs

    while (true) {
      const index = this.events.findIndex(event => event.event === name)

      if (index !== -1) {
        return this.events.splice(index, 1)[0]
      }

      const remaining = until - performance.now()

      if (this.exit != null || remaining <= 0) {
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
   * The exit, if it happens within `timeoutMs`
   */
  async waitExit (timeoutMs: number): Promise<ChildExit | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined

    try {
      return await Promise.race([
        this.exited,
        new Promise<undefined>(resolve => {
          timer = setTimeout(() => { resolve(undefined) }, timeoutMs)
        })
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  kill (): void {
    this.killed = true

    if (this.process.pid != null) {
      killGroup(this.process.pid)
    }
  }

  /**
   * How the child ended, for a verdict: crash message, signal or code
   */
  describeExit (): string {
    if (this.exit == null) {
      return 'still running'
    }

    if (this.exit.killed) {
      return `killed at the ${this.exit.at} ms mark`
    }

    const crash = this.crash

    if (crash != null) {
      return `process crashed: ${crash}`
    }

    return this.exit.signal != null ? `exited on ${this.exit.signal}` : `exited with code ${this.exit.code}`
  }

  private onLine (line: string): void {
    if (!line.startsWith('{')) {
      return
    }

    try {
      this.events.push({ ...JSON.parse(line), at: this.now() })
      this.wake?.()
    } catch {
      // not one of our reports: some library printed it
    }
  }
}
