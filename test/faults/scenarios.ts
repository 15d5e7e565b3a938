/**
 * The network fault scenarios: a peer in another namespace whose packets
 * vanish (link down: no FIN, no RST, no ICMP), against each transport. Each
 * scenario says what it measures (rows of the table) and which bounds it
 * asserts, for ours, and for tcp where tcp is the reference that shows the
 * fault was real
 */
import { delay, now } from '../../toolbox/time.ts'
import { DEADLINES, leftovers, runTrial, stopNode, unansweredAddr, watchNode } from './trial.ts'
import type { Stopped, Trial, Watched } from './trial.ts'
import type { ProbeOptions } from '../../toolbox/probe.ts'
import type { TransportId } from '../../toolbox/transports.ts'

/**
 * The inactivity timeout the node runs with where a scenario uses one (ours
 * and tcp; upstream has none)
 */
export const INACTIVITY_MS = 2_000

/**
 * libp2p's connection monitor where a scenario uses it: a ping every second,
 * the connection aborted when one takes longer than a second
 */
export const MONITOR = { pingInterval: 1_000, pingTimeout: 1_000 }

/**
 * How long the node may take to notice a vanished peer before the figure is
 * "not within": three times what either mechanism needs
 */
const NOTICE_WINDOW_MS = 8_000

/**
 * Generous bounds asserted for ours. Node.js defers a socket's timeout once
 * while a write is pending, so a writer blocked by the vanished peer is
 * noticed after twice the inactivity timeout
 */
export const BOUNDS = {
  noticeMs: 2 * INACTIVITY_MS + 2_000,
  monitorNoticeMs: 6_000,
  stopMs: 5_000,
  exitMs: 5_000,
  dialSettledAfterStopMs: 5_000,
  // libp2p gives up on one address after 6 s (ADDRESS_DIAL_TIMEOUT)
  dialTimeoutMs: 15_000,
  reconnectMs: 10_000
}

const FLOOD_STREAMS = 4

export interface Check<R> {
  transports: TransportId[]
  what: string
  pass(result: R): boolean
}

export interface Scenario<R = any> {
  id: string
  title: string
  run(transport: TransportId): Promise<R>
  rows: Array<[string, (result: R) => string]>
  checks: Array<Check<R>>
}

export function ms (value: number | undefined): string {
  if (value == null) {
    return '—'
  }

  return value < 1_000 ? `${Math.round(value)} ms` : `${(value / 1_000).toFixed(2)} s`
}

const within = (value: number | undefined, bound: number): boolean => value != null && value <= bound

// rows and checks every scenario that stops the node shares
function exitCell (r: Stopped): string {
  if (r.exitMs != null) {
    return ms(r.exitMs)
  }

  return r.stopMs != null ? `not within ${ms(DEADLINES.exitMs)}` : '—'
}

function leftoversCell (r: Stopped): string {
  if (r.exitMs == null) {
    return '—'
  }

  return r.leftovers.length === 0 ? 'nothing' : r.leftovers.join(', ')
}

const STOP_ROWS: Array<[string, (result: Stopped) => string]> = [
  ['node.stop()', r => r.stopMs != null ? ms(r.stopMs) : `no answer within ${ms(DEADLINES.stopMs)}${r.stopError != null ? `: ${r.stopError}` : ''}`],
  ['process exits by itself after', exitCell],
  ['kernel keeps (node gone)', leftoversCell],
  ['crash', r => r.crash ?? 'none']
]

function stopChecks <R extends Stopped> (transports: TransportId[]): Array<Check<R>> {
  return [
    { transports, what: `node.stop() resolves within ${ms(BOUNDS.stopMs)}`, pass: r => within(r.stopMs, BOUNDS.stopMs) && r.stopError == null },
    { transports, what: `the process exits by itself within ${ms(BOUNDS.exitMs)} of the stop`, pass: r => within(r.exitMs, BOUNDS.exitMs) },
    { transports, what: 'the process does not crash', pass: r => r.crash == null }
  ]
}

type Role = 'node' | 'peer'

interface Flow {
  id: string
  label: string

  /**
   * Who dials: the node (an outbound peer) or the peer (an inbound one)
   */
  dialer: Role

  /**
   * Who writes into the streams
   */
  writer: Role
}

const FLOWS: Flow[] = [
  { id: 'inbound-peer-writes', label: 'an inbound peer vanishes while it writes to the node', dialer: 'peer', writer: 'peer' },
  { id: 'inbound-node-writes', label: 'an inbound peer vanishes while the node writes to it', dialer: 'peer', writer: 'node' },
  { id: 'outbound-peer-writes', label: 'an outbound peer vanishes while it writes to the node', dialer: 'node', writer: 'peer' },
  { id: 'outbound-node-writes', label: 'an outbound peer vanishes while the node writes to it', dialer: 'node', writer: 'node' }
]

type Mode = 'timeout' | 'monitor' | 'stop'

const MODES: Record<Mode, { label: string, node: Omit<ProbeOptions, 'transport' | 'listen'> }> = {
  timeout: {
    label: `noticed by the inactivity timeout (${ms(INACTIVITY_MS)}; upstream has none)`,
    node: { init: { inboundSocketInactivityTimeout: INACTIVITY_MS, outboundSocketInactivityTimeout: INACTIVITY_MS } }
  },
  monitor: {
    label: `noticed by libp2p's connection monitor (ping every ${ms(MONITOR.pingInterval)}, ${ms(MONITOR.pingTimeout)} timeout)`,
    node: { monitor: MONITOR }
  },
  stop: {
    label: `node.stop() 1 s after the cut, before anything noticed (inactivity timeout ${ms(INACTIVITY_MS)})`,
    node: { init: { inboundSocketInactivityTimeout: INACTIVITY_MS, outboundSocketInactivityTimeout: INACTIVITY_MS } }
  }
}

export type VanishResult = Watched & Stopped

/**
 * Get data flowing between node and peer, as the flow says
 */
async function startFlow (trial: Trial, flow: Flow, nodeOptions: Omit<ProbeOptions, 'transport' | 'listen'>): Promise<{ node: Awaited<ReturnType<Trial['start']>> }> {
  const [node, peer] = await Promise.all([trial.start('node', nodeOptions), trial.start('peer')])
  const [dialer, target] = flow.dialer === 'node' ? [node, peer] : [peer, node]

  await dialer.child.call('flood', {
    addr: target.addr,
    direction: flow.writer === flow.dialer ? 'send' : 'receive',
    streams: FLOOD_STREAMS
  }, DEADLINES.setupMs)

  // at full speed for a moment, so that every buffer on the way is full
  await delay(300)

  return { node }
}

function vanishScenario (flow: Flow, mode: Mode): Scenario<VanishResult> {
  const noticeRows: Array<[string, (r: VanishResult) => string]> = mode === 'stop'
    ? []
    : [
        ['connection closed after the cut', r => r.closeMs != null ? `${ms(r.closeMs)} (${r.reason})` : `not within ${ms(NOTICE_WINDOW_MS)}`],
        ['socket freed after the cut', r => r.freedMs != null ? ms(r.freedMs) : `not within ${ms(NOTICE_WINDOW_MS)}`]
      ]
  const noticeBound = mode === 'monitor' ? BOUNDS.monitorNoticeMs : BOUNDS.noticeMs
  const noticeChecks: Array<Check<VanishResult>> = mode === 'stop'
    ? []
    : [
        { transports: mode === 'timeout' ? ['ours', 'tcp'] : ['ours'], what: `the connection closes within ${ms(noticeBound)} of the cut`, pass: r => within(r.closeMs, noticeBound) },
        { transports: mode === 'timeout' ? ['ours', 'tcp'] : ['ours'], what: `the socket is freed within ${ms(noticeBound)} of the cut`, pass: r => within(r.freedMs, noticeBound) }
      ]

  return {
    id: `${flow.id}/${mode}`,
    title: `${flow.label}: ${MODES[mode].label}`,
    run: async (transport) => runTrial(`${flow.id}/${mode}`, transport, async (trial) => {
      const { node } = await startFlow(trial, flow, MODES[mode].node)
      const cutAt = await trial.cut()
      const watched = await watchNode(node, cutAt, mode === 'stop' ? 1_000 : NOTICE_WINDOW_MS)

      return { ...watched, ...await stopNode(node, trial.pair) }
    }),
    rows: [
      ...noticeRows,
      ['transport back-pressured after the cut', r => r.blocked ? 'yes' : 'no'],
      ...STOP_ROWS
    ],
    checks: [
      ...noticeChecks,
      ...stopChecks(['ours'])
    ]
  }
}

interface DialResult extends Stopped {
  /**
   * The dial's socket sat in SYN_SENT: its SYN was not answered
   */
  synSent: boolean
  settledMs?: number
  settledError?: string
  freedMs?: number
}

/**
 * The node dials the peer's address while the link is down, and stops 1 s
 * into the dial
 */
const dialStop: Scenario<DialResult> = {
  id: 'dial-syn-vanishes/stop',
  title: 'a dial whose SYN is never answered, node.stop() 1 s into it',
  run: async (transport) => runTrial('dial/stop', transport, async (trial) => {
    const node = await trial.start('node')
    await trial.cut()
    await node.child.call('dialInBackground', { addr: unansweredAddr(transport) }, DEADLINES.setupMs)
    await delay(1_000)
    const synSent = (await node.status()).held.some(s => s.state === 'SYN_SENT')
    const stopAt = now()
    const stopped = await stopNode(node, trial.pair)
    const settled = await node.child.next('dial:settled', 0)

    return {
      ...stopped,
      synSent,
      settledMs: settled == null ? undefined : settled.t - stopAt,
      settledError: settled?.error
    }
  }),
  rows: [
    ['SYN unanswered (socket in SYN_SENT)', r => r.synSent ? 'yes' : 'no'],
    ['dial settled after the stop began', r => r.settledMs != null ? `${ms(r.settledMs)} (${r.settledError ?? 'connected'})` : 'never'],
    ...STOP_ROWS
  ],
  checks: [
    { transports: ['ours', 'tcp'], what: 'the SYN goes unanswered', pass: r => r.synSent },
    { transports: ['ours'], what: `the dial rejects within ${ms(BOUNDS.dialSettledAfterStopMs)} of the stop`, pass: r => within(r.settledMs, BOUNDS.dialSettledAfterStopMs) && r.settledError != null },
    ...stopChecks(['ours'])
  ]
}

/**
 * The same dial left to libp2p's own dial timeout, the node running on
 */
const dialTimeout: Scenario<DialResult> = {
  id: 'dial-syn-vanishes/timeout',
  title: 'a dial whose SYN is never answered, left to libp2p\'s dial timeout',
  run: async (transport) => runTrial('dial/timeout', transport, async (trial) => {
    const node = await trial.start('node')
    const startedAt = await trial.cut()
    await node.child.call('dialInBackground', { addr: unansweredAddr(transport) }, DEADLINES.setupMs)
    await delay(1_000)
    const synSent = (await node.status()).held.some(s => s.state === 'SYN_SENT')
    const settled = await node.child.next('dial:settled', BOUNDS.dialTimeoutMs)
    const watched = await watchNode(node, startedAt, BOUNDS.dialTimeoutMs + 2_000, false)

    return {
      synSent,
      settledMs: settled == null ? undefined : settled.t - settled.started,
      settledError: settled?.error,
      freedMs: watched.freedMs,
      ...await stopNode(node, trial.pair)
    }
  }),
  rows: [
    ['SYN unanswered (socket in SYN_SENT)', r => r.synSent ? 'yes' : 'no'],
    ['dial rejected after', r => r.settledMs != null ? `${ms(r.settledMs)} (${r.settledError ?? 'connected'})` : `not within ${ms(BOUNDS.dialTimeoutMs)}`],
    ['socket freed after', r => ms(r.freedMs)],
    ...STOP_ROWS
  ],
  checks: [
    { transports: ['ours', 'tcp'], what: 'the SYN goes unanswered', pass: r => r.synSent },
    { transports: ['ours'], what: `the dial rejects within ${ms(BOUNDS.dialTimeoutMs)}`, pass: r => within(r.settledMs, BOUNDS.dialTimeoutMs) && r.settledError != null },
    { transports: ['ours'], what: 'its socket is freed within 1 s of the rejection', pass: r => r.settledMs != null && within(r.freedMs, r.settledMs + 1_000) },
    ...stopChecks(['ours'])
  ]
}

interface LinkBackResult extends Watched, Stopped {
  /**
   * What the kernel kept of the closed connection while the link was down
   */
  keptWhileDown: string[]
  peerNoticedMs?: number
  peerReason?: string
  reconnectMs?: number
  reconnectError?: string

  /**
   * The node's TCP sockets to the peer once reconnected
   */
  heldAfter: string[]
  alive: boolean
}

/**
 * The node closes the connection of a vanished inbound peer; the link comes
 * back; the peer, which never gave up by itself, learns its connection is
 * gone from the node's kernel, and dials again
 */
const linkBack: Scenario<LinkBackResult> = {
  id: 'link-back',
  title: 'the link comes back after the node closed the connection (node: inactivity timeout and monitor; peer: neither)',
  run: async (transport) => runTrial('link-back', transport, async (trial) => {
    const [node, peer] = await Promise.all([
      trial.start('node', {
        init: { inboundSocketInactivityTimeout: INACTIVITY_MS, outboundSocketInactivityTimeout: INACTIVITY_MS },
        monitor: MONITOR
      }),
      trial.start('peer', { init: { inboundSocketInactivityTimeout: 0, outboundSocketInactivityTimeout: 0 } })
    ])

    await peer.child.call('flood', { addr: node.addr, direction: 'send', streams: FLOOD_STREAMS }, DEADLINES.setupMs)
    await delay(300)
    const cutAt = await trial.cut()
    const watched = await watchNode(node, cutAt, NOTICE_WINDOW_MS)
    const keptWhileDown = await leftovers(trial.pair)

    const restoredAt = await trial.restore()
    const peerClose = await peer.child.next('connection:close', 15_000)
    const result: LinkBackResult = {
      ...watched,
      keptWhileDown,
      peerNoticedMs: peerClose == null ? undefined : peerClose.t - restoredAt,
      peerReason: peerClose == null ? undefined : peerClose.error ?? 'closed by the remote',
      heldAfter: [],
      alive: false,
      leftovers: []
    }

    const reconnectAt = now()

    try {
      await peer.child.call('dial', { addr: node.addr }, DEADLINES.setupMs)
      await peer.child.call('ping', { addr: node.addr }, DEADLINES.setupMs)
      result.reconnectMs = now() - reconnectAt
    } catch (err: any) {
      result.reconnectError = err.message.split('\n')[0]
    }

    result.heldAfter = (await node.status()).held.map(s => s.state)
    result.alive = await node.child.waitExit(0) == null

    return { ...result, ...await stopNode(node, trial.pair) }
  }),
  rows: [
    ['connection closed after the cut', r => r.closeMs != null ? `${ms(r.closeMs)} (${r.reason})` : `not within ${ms(NOTICE_WINDOW_MS)}`],
    ['socket freed after the cut', r => r.freedMs != null ? ms(r.freedMs) : `not within ${ms(NOTICE_WINDOW_MS)}`],
    ['kernel keeps while the link is down', r => r.keptWhileDown.length === 0 ? 'nothing' : r.keptWhileDown.join(', ')],
    ['peer learns after the link is back', r => r.peerNoticedMs != null ? `${ms(r.peerNoticedMs)} (${r.peerReason})` : 'not within 15 s'],
    ['peer dials again and pings', r => r.reconnectMs != null ? ms(r.reconnectMs) : `failed: ${r.reconnectError}`],
    ['node\'s sockets to the peer then', r => r.heldAfter.join(', ') || 'none'],
    ...STOP_ROWS
  ],
  checks: [
    { transports: ['ours', 'tcp'], what: `the connection closes within ${ms(BOUNDS.noticeMs)} of the cut`, pass: r => within(r.closeMs, BOUNDS.noticeMs) },
    { transports: ['ours', 'tcp'], what: `the peer reconnects within ${ms(BOUNDS.reconnectMs)}`, pass: r => within(r.reconnectMs, BOUNDS.reconnectMs) },
    { transports: ['ours'], what: 'the node then holds exactly the new socket', pass: r => r.heldAfter.length === 1 && r.heldAfter[0] === 'ESTABLISHED' },
    { transports: ['ours'], what: 'the node survived the link coming back', pass: r => r.alive },
    ...stopChecks(['ours'])
  ]
}

export const SCENARIOS: Scenario[] = [
  ...FLOWS.flatMap(flow => (['timeout', 'monitor', 'stop'] as const).map(mode => vanishScenario(flow, mode))),
  dialStop,
  dialTimeout,
  linkBack
]
