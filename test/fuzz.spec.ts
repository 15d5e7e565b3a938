import { randomBytes } from 'node:crypto'
import { stop } from '@libp2p/interface'
import { expect } from 'aegir/chai'
import { echo } from '../toolbox/echo.ts'
import { rawClient } from '../toolbox/raw-client.ts'
import { closeCodeOf, responseHeadLength } from '../toolbox/raw-websocket.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { frameBytes, mutateBytes, proxyHeaderBytes, splitBytes, upgradeRequestBytes } from './fixtures/fuzz-inputs.ts'
import { totalOf } from './fixtures/internals.ts'
import { listenerEventCount } from './fixtures/listener-events.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { caseSeed, prng } from './fixtures/prng.ts'
import { failOnProcessErrors } from './fixtures/process-errors.ts'
import { proxyV1 } from './fixtures/proxy-headers.ts'
import { proxyRelay } from './fixtures/proxy-relay.ts'
import type { Prng } from './fixtures/prng.ts'
import type { RawClient } from '../toolbox/raw-client.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Replay a run with FUZZ_SEED, or one case of it with FUZZ_SEED, FUZZ_FIRST
 * and FUZZ_CASES=1
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0x11b2d)
const FIRST = Number(process.env.FUZZ_FIRST ?? 0)
const CASES = Number(process.env.FUZZ_CASES ?? 4_000)
const PROXY_CASES = Number(process.env.FUZZ_PROXY_CASES ?? 1_500)
const CONCURRENCY = 48

const HANDSHAKE_TIMEOUT = 500
const INBOUND_UPGRADE_TIMEOUT = 1_500

/**
 * How long a client waits for the server to answer or close before it goes
 */
const PATIENCE = 150

interface Outcome {
  upgraded: boolean
  status?: number
  closeCode?: number
  closedByServer: boolean
}

async function tick (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

/**
 * Play the case: garbage, or an upgrade request followed, if the server
 * upgrades, by frames; then leave in one of several ways
 */
async function play (index: number, ma: Multiaddr, clients: Set<RawClient>, prefix?: (rng: Prng) => Buffer): Promise<Outcome> {
  const rng = prng(caseSeed(SEED, index))
  const client = await rawClient(ma, { allowHalfOpen: rng.chance(0.1) })
  clients.add(client)

  try {
    let request = rng.chance(0.08)
      ? Buffer.from(rng.bytes(1 + rng.int(600)))
      : upgradeRequestBytes(rng, '127.0.0.1')

    // drawn after the request, so that the cases without one replay as before
    if (prefix != null) {
      request = Buffer.concat([prefix(rng), request])
    }

    for (const piece of splitBytes(rng, request)) {
      client.write(piece)
      await tick()
    }

    const answered = (c: RawClient): boolean => responseHeadLength(c.received) !== -1 || c.ended || c.closed
    await client.waitFor(answered, PATIENCE, 'an answer').catch(() => {})

    const headLength = responseHeadLength(client.received)
    const head = client.received.subarray(0, Math.max(headLength, 0)).toString('latin1')
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]
    const upgraded = status === '101'

    if (upgraded) {
      let frames: Buffer = Buffer.concat(Array.from({ length: 1 + rng.int(6) }, () => frameBytes(rng)))

      if (rng.chance(0.1)) {
        frames = mutateBytes(rng, frames)
      }

      for (const piece of splitBytes(rng, frames)) {
        client.write(piece)
        await tick()
      }
    }

    const leave = rng.int(20)

    if (leave === 0) {
      // stay until the server gives up on us: the handshake deadline, the
      // libp2p upgrade timeout or the closing handshake
      await client.waitFor(c => c.ended || c.closed, HANDSHAKE_TIMEOUT + INBOUND_UPGRADE_TIMEOUT + 3_000, 'the server closing a lingering client')
    } else if (leave < 5) {
      client.socket.end()
      await client.waitFor(c => c.closed, PATIENCE, 'the server closing').catch(() => {})
    } else if (leave < 12) {
      await client.waitFor(c => c.ended || c.closed, PATIENCE, 'the server closing').catch(() => {})
    }

    return {
      upgraded,
      status: status == null ? undefined : Number(status),
      closeCode: upgraded ? closeCodeOf(client.received.subarray(headLength)) : undefined,
      closedByServer: client.ended || client.closed
    }
  } finally {
    client.socket.destroy()
  }
}

/**
 * Play `count` cases from FIRST on, CONCURRENCY at a time; a case that throws
 * (a client that never got an answer) is a failure, not the end of the run
 */
async function playAll (count: number, ma: Multiaddr, clients: Set<RawClient>, prefix?: (rng: Prng) => Buffer): Promise<{ outcomes: Outcome[], failures: string[] }> {
  const outcomes: Outcome[] = []
  const failures: string[] = []
  let next = FIRST

  await withDeadline(Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < FIRST + count) {
      const index = next++

      try {
        outcomes.push(await play(index, ma, clients, prefix))
      } catch (err: any) {
        failures.push(`case ${index}: ${err.message}`)
      }
    }
  })), 45_000, 'every case being played')

  return { outcomes, failures }
}

describe('fuzzing the listener', function () {
  this.timeout(60_000)

  let nodes: Libp2p[]
  let clients: Set<RawClient>

  beforeEach(() => {
    nodes = []
    clients = new Set()
  })

  afterEach(async () => {
    clients.forEach(client => { client.socket.destroy() })
    await withDeadline(stop(...nodes), 10_000, 'stopping the nodes')
  })

  failOnProcessErrors()

  it(`survives ${CASES} mutated upgrade requests and frames (seed ${SEED}, from case ${FIRST}), leaks nothing and still serves a real peer`, async () => {
    const { node, listener, metrics, ma } = await listeningNode(nodes, { handshakeTimeout: HANDSHAKE_TIMEOUT, closeTimeout: 500 }, false, {
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 100_000,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT
    })

    const start = Date.now()
    const { outcomes, failures } = await playAll(CASES, ma, clients)
    const elapsed = Date.now() - start

    // a client that never got an answer is a leak or a hang on the server
    expect(failures, `seed ${SEED}`).to.be.empty()
    expect(outcomes).to.have.lengthOf(CASES)
    expect(elapsed).to.be.below(30_000)

    // every client has gone: the listener lets go of every socket
    await until(() => totalOf(listener.socketCounts()) === 0, 10_000, 'the listener releasing every socket')
    expect(node.getConnections()).to.be.empty()

    // the run reached every phase, not just the HTTP parser
    if (CASES >= 1_000) {
      const upgraded = outcomes.filter(o => o.upgraded).length
      const refused = outcomes.filter(o => o.status != null && o.status >= 400).length
      const closeCodes = new Set(outcomes.map(o => o.closeCode).filter(code => code != null))

      expect(upgraded).to.be.above(CASES / 10)
      expect(refused).to.be.above(CASES / 20)
      expect([...closeCodes]).to.include.members([1002])
      expect(listenerEventCount(metrics, 'http_error')).to.be.above(0)
      expect(listenerEventCount(metrics, 'unexpected_tls')).to.be.above(0)
    }

    // and a real peer still gets through
    const dialer = await dialerNode(nodes)
    const input = new Uint8Array(randomBytes(256 * 1024))
    const output = await echo(dialer, ma, input, { signal: AbortSignal.timeout(10_000) })
    expect(output).to.equalBytes(input)
  })

  it(`survives ${PROXY_CASES} mutated PROXY headers from a trusted proxy before mutated upgrade requests (seed ${SEED}), leaks nothing and still serves a real peer`, async () => {
    const { node, listener, metrics, ma } = await listeningNode(nodes, {
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      closeTimeout: 500,
      trustedProxies: ['127.0.0.1'],
      proxyProtocol: true
    }, false, {
      maxIncomingPendingConnections: 1_000,
      inboundConnectionThreshold: 100_000,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT
    })

    const { outcomes, failures } = await playAll(PROXY_CASES, ma, clients, proxyHeaderBytes)

    expect(failures, `seed ${SEED}`).to.be.empty()
    expect(outcomes).to.have.lengthOf(PROXY_CASES)
    await until(() => totalOf(listener.socketCounts()) === 0, 10_000, 'the listener releasing every socket')
    expect(node.getConnections()).to.be.empty()

    // valid headers led to upgrades, invalid ones were refused
    if (PROXY_CASES >= 1_000) {
      expect(outcomes.filter(o => o.upgraded).length).to.be.above(PROXY_CASES / 20)
      expect(listenerEventCount(metrics, 'proxy_malformed')).to.be.above(0)
      expect(listenerEventCount(metrics, 'proxy_oversized')).to.be.above(0)
      expect(listenerEventCount(metrics, 'proxy_version')).to.be.above(0)
      expect(listenerEventCount(metrics, 'proxy_family')).to.be.above(0)
    }

    // and a real peer through the proxy still gets through
    const dialer = await dialerNode(nodes)
    const relay = await proxyRelay(ma, proxyV1('192.0.2.1', 1))

    try {
      const input = new Uint8Array(randomBytes(64 * 1024))
      const output = await echo(dialer, relay.ma, input, { signal: AbortSignal.timeout(10_000) })
      expect(output).to.equalBytes(input)
    } finally {
      await relay.close()
    }
  })
})
