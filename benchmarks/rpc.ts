import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'

/**
 * Commands between the bench runner and its child processes, over the IPC
 * channel of `child_process.fork`
 */
export type Handlers = Record<string, (args: any) => Promise<any>>

interface Request {
  id: number
  cmd: string
  args: any
}

interface Response {
  id: number
  result?: any
  error?: string
  ready?: boolean
}

/**
 * A handler that returns this has the child drop its IPC channel once the
 * answer is sent, so that nothing of ours keeps the process alive
 */
export const DISCONNECT = Symbol('disconnect')

/**
 * Epoch ms with sub-ms precision, comparable across processes
 */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

export function serve (handlers: Handlers): void {
  let disconnecting = false

  // no child may outlive the runner, whatever way the runner went
  process.on('disconnect', () => {
    if (!disconnecting) {
      process.exit(0)
    }
  })

  process.on('message', (req: Request) => {
    const handler = handlers[req.cmd]

    if (handler == null) {
      process.send?.({ id: req.id, error: `unknown command ${req.cmd}` })
      return
    }

    handler(req.args).then(
      (result) => {
        const disconnect = result?.[DISCONNECT] === true

        process.send?.({ id: req.id, result }, () => {
          if (disconnect) {
            disconnecting = true
            process.disconnect?.()
          }
        })
      },
      (err) => {
        process.send?.({ id: req.id, error: err?.stack ?? String(err) })
      }
    )
  })

  process.send?.({ id: -1, ready: true })
}

/**
 * Node options every child gets, e.g. --cpu-prof
 */
export const childExecArgv: string[] = []

export interface ChildOptions {
  /**
   * The process is killed this many ms after it started, whatever it is doing
   */
  deadline: number
  execArgv?: string[]
}

export interface ChildExit {
  code: number | null
  signal: string | null
  at: number
  killed: boolean
}

const ENTRY = new URL('./child.ts', import.meta.url).pathname

const children = new Set<Child>()

export class Child {
  readonly role: string
  readonly exited: Promise<ChildExit>
  private readonly proc: ChildProcess
  private readonly pending: Map<number, { resolve(value: any): void, reject(err: Error): void, timer: ReturnType<typeof setTimeout> }>
  private readonly deadline: ReturnType<typeof setTimeout>
  private nextId: number
  private killed: boolean

  private constructor (role: string, args: any, options: ChildOptions) {
    this.role = role
    this.pending = new Map()
    this.nextId = 0
    this.killed = false
    const profileName = childExecArgv.includes('--cpu-prof')
      ? [`--cpu-prof-name=${[role, args.transport ?? args.kind, Date.now()].join('-')}.cpuprofile`]
      : []
    this.proc = fork(ENTRY, [role, JSON.stringify(args)], {
      execArgv: ['--disable-warning=ExperimentalWarning', ...childExecArgv, ...profileName, ...(options.execArgv ?? [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // bufferutil (native WebSocket masking) comes with our package, not with
      // upstream's: upstream's processes run as it installs on its own
      env: args.transport === 'upstream' ? { ...process.env, WS_NO_BUFFER_UTIL: '1' } : process.env
    })
    children.add(this)

    this.deadline = setTimeout(() => {
      process.stderr.write(`bench: ${role} passed its ${options.deadline} ms deadline, killing it\n`)
      this.kill()
    }, options.deadline)

    this.exited = new Promise(resolve => {
      this.proc.once('exit', (code, signal) => {
        const at = now()
        clearTimeout(this.deadline)
        children.delete(this)

        for (const { reject, timer } of this.pending.values()) {
          clearTimeout(timer)
          reject(new Error(`${role} exited (${code ?? signal}) before answering`))
        }
        this.pending.clear()

        resolve({ code, signal, at, killed: this.killed })
      })
    })

    this.proc.on('message', (res: Response) => {
      const call = this.pending.get(res.id)

      if (call == null) {
        return
      }

      this.pending.delete(res.id)
      clearTimeout(call.timer)

      if (res.error != null) {
        call.reject(new Error(`${role}: ${res.error}`))
      } else {
        call.resolve(res.result)
      }
    })
  }

  /**
   * Fork `child.ts` in this role and wait until it serves commands
   */
  static async start (role: string, args: any, options: ChildOptions): Promise<Child> {
    const child = new Child(role, args, options)

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill()
        reject(new Error(`${role} did not start`))
      }, 30_000)

      child.proc.on('message', (res: Response) => {
        if (res.ready === true) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.exited.then(exit => {
        clearTimeout(timer)
        reject(new Error(`${role} exited (${exit.code ?? exit.signal}) while starting`))
      }, reject)
    })

    return child
  }

  get pid (): number | undefined {
    return this.proc.pid
  }

  async call<T = any> (cmd: string, args: any = {}, timeout: number = 60_000): Promise<T> {
    const id = this.nextId++

    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.role}: ${cmd} took over ${timeout} ms`))
      }, timeout)

      this.pending.set(id, { resolve, reject, timer })
      this.proc.send({ id, cmd, args })
    })
  }

  /**
   * Wait for the process to exit by itself, killing it after `ms`
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
   * Drop the IPC channel, on which the child exits by itself (writing its
   * CPU profile if it has one to write), killing it after `ms`
   */
  async close (ms: number = 5_000): Promise<ChildExit> {
    if (this.proc.connected) {
      this.proc.disconnect()
    }

    return this.exitWithin(ms)
  }

  kill (): void {
    if (this.proc.exitCode != null || this.proc.signalCode != null) {
      return
    }

    this.killed = true
    this.proc.kill('SIGKILL')
  }
}

/**
 * Kill every child still running: on the way out, whatever way that is
 */
export function killAll (): void {
  for (const child of children) {
    child.kill()
  }
}
