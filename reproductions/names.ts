/**
 * Every reproduction, by the name of its script, in the order of UPSTREAM.md:
 * all.ts runs them one after the other, upstream/verify.ts after each patch
 */
export const REPRODUCTIONS = [
  'malformed-frame',
  'silent-client',
  'frozen-peer',
  'aborted-dial',
  'failed-dial',
  'reset',
  'handshake-deadline',
  'oversize-message',
  'plain-http'
]
