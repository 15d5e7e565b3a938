/**
 * Child processes, spoken to over IPC (see supervised.ts for their side):
 * each has a deadline after which it is killed, leads its own process group
 * unless told otherwise, and dies with us however we go
 */
import { execFileSync, fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { constants } from 'node:os'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'
import { delay, now, until, within } from './time.ts'
import type { Message } from './supervised.ts'
import type { ChildProcess } from 'node:child_process'

// the end of a child's output explains a crash; all of it is not needed
const OUTPUT_TAIL = 8_000

// every child still running, so that none outlives us
const live = new Set<Child>()

export interface ChildOptions {
  /**
   * For errors, and for `ps`
   *
   * @default the script's file name
   */
  name?: string

  /**
   * Kill the child this many ms after it started, whatever it is doing
   *
   * @default 60_000
   */
  deadlineMs?: number

  /**
   * Node.js options, after our own
   *
   * @default []
   */
  execArgv?: string[]

  /**
   * Added to our environment
   *
   * @default {}
   */
  env?: NodeJS.ProcessEnv

  /**
   * Lead a process group of its own, so that killing the child also kills
   * whatever it forked. A child that must die with its parent's group instead
   * (a peer a reproduction forks) sets this to false
   *
   * @default true
   */
  ownGroup?: boolean

  /**
   * Run the child in this network namespace (`ip netns exec`, which needs
   * root): its sockets see only that namespace's links and addresses. The
   * IPC channel is a file descriptor, so it crosses into the namespace
   *
   * @default the parent's namespace
   */
  netns?: string
}

export interface ChildExit {
  code: number | null
  signal: string | null

  /**
   * Epoch ms, as `now()`
   */
  at: number

  /**
   * Whether we killed it
   */
  killed: boolean
}

/**
 * A message from the child and when it arrived, in epoch ms as `now()`
 */
export type Received = Message & { at: number }

export class Child {
  readonly name: string
  readonly startedAt: number
  readonly exited: Promise<ChildExit>
  private readonly process: ChildProcess
  private readonly ownGroup: boolean
  private readonly inbox: Received[]
  private readonly waiting: Set<() => void>
  private readonly deadline: ReturnType<typeof setTimeout>
  private tail: string
  private exit?: ChildExit
  private killed: boolean
  private calls: number

  constructor (script: string | URL, args: string[] = [], options: ChildOptions = {}) {
    killAllOnExit()
    this.name = options.name ?? basename(script instanceof URL ? fileURLToPath(script) : script)
    this.startedAt = now()
    this.ownGroup = options.ownGroup ?? true
    this.inbox = []
    this.waiting = new Set()
    this.tail = ''
    this.killed = false
    this.calls = 0
    const execArgv = [...process.execArgv, ...options.execArgv ?? []]
    this.process = fork(script, args, {
      detached: this.ownGroup,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // `ip netns exec` execs Node.js in its place: same pid, same group
      ...(options.netns == null
        ? { execArgv }
        : { execPath: 'ip', execArgv: ['netns', 'exec', options.netns, process.execPath, ...execArgv] }),
      env: { ...process.env, ...options.env }
    })
    live.add(this)

    const keep = (chunk: string): void => {
      this.tail = (this.tail + chunk).slice(-OUTPUT_TAIL)
    }
    this.process.stdout?.setEncoding('utf8').on('data', keep)
    this.process.stderr?.setEncoding('utf8').on('data', keep)
    this.process.on('message', (message: Message) => {
      this.inbox.push({ ...message, at: now() })
      this.wake()
    })

    this.deadline = setTimeout(() => { this.kill() }, options.deadlineMs ?? 60_000)

    // the last messages and output can arrive after 'exit': wait for the
    // channel and the pipes to close, briefly, since a process the child
    // forked may hold the pipes open
    const drained = Promise.all([
      new Promise(resolve => this.process.once('disconnect', resolve)),
      ...[this.process.stdout, this.process.stderr].map(async stream => new Promise(resolve => stream?.once('close', resolve)))
    ])

    this.exited = new Promise(resolve => {
      const onExit = (code: number | null, signal: string | null): void => {
        const at = now()
        clearTimeout(this.deadline)
        // whatever it forked into its group goes with it, frozen or not
        if (this.ownGroup) {
          this.signal('SIGKILL')
        }
        live.delete(this)

        void Promise.race([drained, delay(500)]).then(() => {
          this.exit ??= { code, signal, at, killed: this.killed }
          this.wake()
          resolve(this.exit)
        })
      }

      this.process.once('exit', onExit)
      this.process.once('error', () => { onExit(null, null) })
    })
  }

  get pid (): number | undefined {
    return this.process.pid
  }

  /**
   * The end of what the child wrote on stdout and stderr
   */
  get output (): string {
    return this.tail
  }

  /**
   * The first line of an uncaught error in the output, e.g. `RangeError:
   * Invalid WebSocket frame: invalid opcode 3`
   */
  get crash (): string | undefined {
    return this.tail.split('\n').find(line => /^\s*(\w*Error|Uncaught)\b/.test(line))?.trim()
  }

  /**
   * How the child ended, for a message: crash, kill, signal or code
   */
  describeExit (): string {
    if (this.exit == null) {
      return 'still running'
    }

    if (this.exit.killed) {
      return `killed at the ${Math.round(this.exit.at - this.startedAt)} ms mark`
    }

    if (this.crash != null) {
      return `process crashed: ${this.crash}`
    }

    return this.exit.signal != null ? `exited on ${this.exit.signal}` : `exited with code ${this.exit.code}`
  }

  send (message: Message): void {
    if (this.process.connected) {
      this.process.send(message)
    }
  }

  /**
   * The first message of this type that `match` accepts and no earlier call
   * took, or undefined if none came within `ms` or the child exited first
   */
  async next (type: string, ms: number, match: (message: Received) => boolean = () => true): Promise<Received | undefined> {
    return this.take(message => message.type === type && match(message), ms)
  }

  /**
   * Like `next`, but no message is an error
   */
  async expect (type: string, ms: number, match?: (message: Received) => boolean): Promise<Received> {
    return this.orFail(await this.next(type, ms, match), `reporting "${type}"`, ms)
  }

  /**
   * Wait for the child's `ready` (see `serve()`); kill it if none comes
   */
  async started (ms: number = 30_000): Promise<Received> {
    try {
      return await this.expect('ready', ms)
    } catch (err) {
      this.kill()
      throw err
    }
  }

  /**
   * Have the child run one of the commands it serves; resolves with its
   * reply (`result` or `error`), or undefined if none came within `ms` or the
   * child exited first
   */
  async ask (command: string, args: unknown = {}, ms: number = 60_000): Promise<Received | undefined> {
    const id = this.calls++
    this.send({ type: 'call', id, command, args })

    return this.take(message => message.type === 'reply' && message.id === id, ms)
  }

  /**
   * Like `ask`, but resolves with the result; no reply, or an error, rejects
   */
  async call <T = any> (command: string, args: unknown = {}, ms: number = 60_000): Promise<T> {
    const reply = this.orFail(await this.ask(command, args, ms), `answering ${command}`, ms)

    if (reply.error != null) {
      throw new Error(`${this.name}: ${reply.error}`)
    }

    return reply.result
  }

  /**
   * The exit, if it comes within `ms`
   */
  async waitExit (ms: number): Promise<ChildExit | undefined> {
    return within(this.exited, ms)
  }

  /**
   * Wait for the child to exit by itself, killing it after `ms`
   */
  async exitWithin (ms: number): Promise<ChildExit> {
    const timer = setTimeout(() => { this.kill() }, ms)

    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Close the IPC channel, on which a child that serves exits (writing its
   * CPU profile, if it makes one), killing it after `ms`
   */
  async close (ms: number = 5_000): Promise<ChildExit> {
    if (this.process.connected) {
      this.process.disconnect()
    }

    return this.exitWithin(ms)
  }

  /**
   * Stop the process where it is (SIGSTOP): its sockets stay open and nothing
   * answers on them
   */
  freeze (): void {
    this.process.kill('SIGSTOP')
  }

  /**
   * Resolves once the kernel shows the process stopped: `freeze()` only sends
   * the signal
   */
  async frozen (ms: number): Promise<void> {
    const pid = this.process.pid

    if (pid == null) {
      throw new Error(`${this.name} never started`)
    }

    await until(() => isStopped(pid), ms, `${this.name} stopping`)
  }

  /**
   * SIGCONT: the process runs again after `freeze()`
   */
  thaw (): void {
    this.process.kill('SIGCONT')
  }

  /**
   * Hold nothing of the child any more (channel, pipes, timers), so that it
   * does not keep this process alive. It is still killed when we exit
   */
  release (): void {
    this.process.channel?.unref()
    this.process.stdout?.destroy()
    this.process.stderr?.destroy()
    this.process.unref()
    this.deadline.unref()
  }

  /**
   * SIGKILL, frozen or not. Gone already is fine
   */
  kill (): void {
    if (live.has(this)) {
      this.killed = true
      this.signal('SIGKILL')
    }
  }

  /**
   * To the whole group if the child leads one; SIGCONT after a SIGKILL, in
   * case a member is frozen and only continued
   */
  private signal (signal: 'SIGKILL'): void {
    const pid = this.process.pid

    // no pid: it never started (and -0 would be our own group)
    if (pid == null) {
      return
    }

    for (const each of [signal, 'SIGCONT'] as const) {
      try {
        process.kill(this.ownGroup ? -pid : pid, each)
      } catch {
        // gone already
      }
    }
  }

  private orFail (message: Received | undefined, what: string, ms: number): Received {
    if (message != null) {
      return message
    }

    throw new Error(this.exit == null
      ? `${this.name} did not finish ${what} within ${ms} ms`
      : `${this.name} ${this.describeExit()} before ${what}\n${this.tail.trim()}`)
  }

  private async take (match: (message: Received) => boolean, ms: number): Promise<Received | undefined> {
    const until = performance.now() + ms

    while (true) {
      const index = this.inbox.findIndex(match)

      if (index !== -1) {
        return this.inbox.splice(index, 1)[0]
      }

      const remaining = until - performance.now()

      if (this.exit != null || remaining <= 0) {
        return undefined
      }

      await within(new Promise<void>(resolve => { this.waiting.add(resolve) }), remaining)
    }
  }

  private wake (): void {
    for (const resolve of this.waiting) {
      resolve()
    }

    this.waiting.clear()
  }
}

/**
 * Whether the kernel has stopped the process (state T): from /proc where
 * there is one, else from `ps` (macOS). No signal or event tells us
 */
function isStopped (pid: number): boolean {
  try {
    // the state follows the command name, which is in parentheses
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')
  } catch {
    return execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim().startsWith('T')
  }
}

let exitHandled = false

function killAllOnExit (): void {
  if (!exitHandled) {
    exitHandled = true
    process.on('exit', killAll)
  }
}

/**
 * Kill every child still running
 */
export function killAll (): void {
  for (const child of live) {
    child.kill()
  }
}

/**
 * For a script that starts children: on SIGINT, SIGTERM or SIGHUP kill them
 * all, run `then` (to tidy the terminal), and exit as the signal would have
 */
export function killAllOnSignals (then?: (signal: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll()
      then?.(signal)
      process.exit(128 + constants.signals[signal])
    })
  }
}
