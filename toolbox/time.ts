/**
 * Waiting, for every tool: each wait has a deadline, so that nothing the
 * transports under test do can hang a test, the demo or a benchmark
 */

const TIMED_OUT = Symbol('timed out')

async function race <T> (promise: Promise<T> | T, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined

  try {
    return await Promise.race([
      Promise.resolve(promise),
      new Promise<typeof TIMED_OUT>(resolve => {
        timer = setTimeout(() => { resolve(TIMED_OUT) }, ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Resolve with `promise`, or reject once `ms` have passed
 */
export async function withDeadline <T> (promise: Promise<T> | T, ms: number, what: string): Promise<T> {
  const value = await race(promise, ms)

  if (value === TIMED_OUT) {
    throw new Error(`${what} did not happen within ${ms}ms`)
  }

  return value
}

/**
 * Resolve with the value of `promise`, or with `undefined` once `ms` have
 * passed: for a wait whose running out is a finding, not a failure
 */
export async function within <T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  const value = await race(promise, ms)

  return value === TIMED_OUT ? undefined : value
}

/**
 * Wait until `condition` holds, checking after every turn of the event loop
 * and failing after `ms`. For state that has no event of its own
 */
export async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now()

  while (!condition()) {
    if (Date.now() - start > ms) {
      throw new Error(`${what} did not happen within ${ms}ms`)
    }

    await delay(5)
  }
}

/**
 * For the kernel or another process to catch up where nothing tells us when
 * it has
 */
export async function delay (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/**
 * Epoch ms with sub-ms precision, comparable across processes
 */
export function now (): number {
  return performance.timeOrigin + performance.now()
}
