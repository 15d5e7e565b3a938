/**
 * The child's side of supervisor.ts: messages to the parent over the IPC
 * channel, and the parent's calls answered
 */

/**
 * What goes over the IPC channel, either way
 */
export interface Message {
  type: string
  [key: string]: any
}

/**
 * What a child answers calls with, by command name
 */
export type Commands = Record<string, (args: any) => Promise<unknown>>

let letGoOfParent = false

/**
 * Tell the parent; resolves once the message has left the process
 */
export async function report (type: string, data: Record<string, unknown> = {}): Promise<void> {
  await new Promise<void>(resolve => {
    if (process.send == null) {
      resolve()
      return
    }

    // an error here is a parent gone: nobody to tell
    process.send({ ...data, type }, undefined, {}, () => { resolve() })
  })
}

/**
 * Answer the parent's calls, then report `ready` with `data`. The process
 * exits when the parent goes (a parent that died cannot kill us), unless it
 * let go of the parent first
 */
export function serve (commands: Commands, data: Record<string, unknown> = {}): void {
  process.on('disconnect', () => {
    if (!letGoOfParent) {
      process.exit(0)
    }
  })

  process.on('message', (message: Message) => {
    if (message.type !== 'call') {
      return
    }

    const command = commands[message.command]
    const answer = command == null ? Promise.reject(new Error(`unknown command ${message.command}`)) : command(message.args)

    answer.then(
      async result => { await report('reply', { id: message.id, result }) },
      async (err: any) => { await report('reply', { id: message.id, error: err?.stack ?? String(err) }) }
    )
  })

  void report('ready', data)
}

/**
 * From now on the IPC channel does not keep this process alive (messages
 * still go): it exits by itself once nothing else holds it, which is what the
 * parent measures
 */
export function letGo (): void {
  letGoOfParent = true
  process.channel?.unref()
}
