/**
 * What the parent asks of a child over IPC
 */
export type Command =
  /**
   * Dial `addr`. With `hold`, also open a stream, wait until the remote has
   * answered on it and report `dialed`; without, leave the dial pending
   */
  | { type: 'dial', addr: string, hold: boolean }
  | { type: 'stop' }

/**
 * What a child tells the parent over IPC
 */
export type Report =
  | { type: 'listening', addrs: string[] }
  | { type: 'dialed' }
  | { type: 'stopped', stopMs: number, error?: string }
  | { type: 'failed', error: string }
