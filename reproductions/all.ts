/**
 * Every reproduction, one after the other (they time things, and the machine
 * may be small), each printing its verdict lines under its name: importing a
 * reproduction runs it.
 *
 * Usage: `node reproductions/all.ts [upstream|ours]`
 */
import { REPRODUCTIONS } from './names.ts'

for (const name of REPRODUCTIONS) {
  process.stdout.write(`${name}\n`)
  await import(`./${name}.ts`)
}
