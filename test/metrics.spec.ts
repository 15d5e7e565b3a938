import http from 'node:http'
import net from 'node:net'
import { defaultLogger } from '@libp2p/logger'
import { getNetConfig } from '@libp2p/utils'
import { webSockets as upstreamWebSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { webSockets } from '../src/index.ts'
import { connect } from '../toolbox/raw-client.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { closedByServer, halfHttpClient, silentClient, upgradedClient } from '../toolbox/stalled-clients.ts'
import { LOOPBACK_WS } from './fixtures/bare-listener.ts'
import { until, withDeadline } from './fixtures/deadline.ts'
import { recordingMetrics } from './fixtures/recording-metrics.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { SilentServer } from '../toolbox/silent-server.ts'
import type { TrackingListener } from './fixtures/internals.ts'
import type { RecordingMetrics } from './fixtures/recording-metrics.ts'
import type { Libp2pEvents, Listener, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { WebSocket } from 'ws'

describe('sockets by phase, as metrics', () => {
  let transport: Transport
  let calculators: Map<string, () => unknown>
  let listener: Listener | undefined
  let server: SilentServer | undefined
  const clients: net.Socket[] = []

  beforeEach(() => {
    const recording = recordingMetrics()
    calculators = recording.calculators
    transport = webSockets()({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>(),
      metrics: recording.metrics
    })
  })

  afterEach(async () => {
    clients.splice(0).forEach(client => client.destroy())
    await listener?.close()
    await server?.close()
    listener = server = undefined
  })

  it('counts the listener\'s sockets in each phase, labelled with its address', async () => {
    listener = transport.createListener({ upgrader: {} as unknown as Upgrader })
    await listener.listen(LOOPBACK_WS)
    const ma = listener.getAddrs()[0]
    const { port } = getNetConfig(ma)
    const sockets = (): Record<string, number> => calculators.get('libp2p_websockets_listener_sockets')?.() as Record<string, number>

    clients.push(await silentClient(ma), await halfHttpClient(ma))
    await until(() => sockets()[`127.0.0.1:${port} http`] === 1, 5_000, 'the half request reaching the HTTP phase')

    expect(sockets()).to.include({
      [`127.0.0.1:${port} accepted`]: 1,
      [`127.0.0.1:${port} http`]: 1,
      [`127.0.0.1:${port} open`]: 0
    })
    expect(calculators.get('libp2p_websockets_inbound_connections_total')?.()).to.deep.equal({ [`127.0.0.1:${port}`]: 2 })
  })

  it('counts the dialer\'s sockets in each phase', async () => {
    server = await silentServer()
    const dialerSockets = (): unknown => calculators.get('libp2p_websockets_dialer_sockets')?.()
    const controller = new AbortController()

    const dial = transport.dial(server.multiaddr.encapsulate('/ws'), {
      upgrader: {} as unknown as Upgrader,
      signal: controller.signal
    })
    dial.catch(() => {})
    await server.connected()

    expect(dialerSockets()).to.deep.equal({ dialing: 1, upgrading: 0, open: 0 })

    controller.abort()
    await expect(dial).to.eventually.be.rejected()
    await until(() => (dialerSockets() as Record<string, number>).dialing === 0, 1_000, 'the aborted dial leaving the registry')
  })
})

describe('the listener\'s metrics', () => {
  let recording: RecordingMetrics
  let listener: Listener | undefined
  let addr: string
  const clients: Array<net.Socket | WebSocket> = []
  const servers: net.Server[] = []

  const increments = (name: string): Array<Record<string, number | true>> => recording.increments.get(name) ?? []
  const events = (): Array<Record<string, number | true>> => increments('libp2p_websockets_listener_events_total')
  const errors = (): Array<Record<string, number | true>> => increments('libp2p_websockets_listener_errors_total')

  /**
   * Our listener on loopback, its upgrades handed to `upgradeInbound`
   */
  async function listen (init: WebSocketsInit = {}, upgradeInbound: Upgrader['upgradeInbound'] = async () => {}): Promise<Multiaddr> {
    recording = recordingMetrics()
    const transport = webSockets(init)({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>(),
      metrics: recording.metrics
    })
    listener = transport.createListener({ upgrader: { upgradeInbound } as unknown as Upgrader })
    await listener.listen(LOOPBACK_WS)
    const ma = listener.getAddrs()[0]
    addr = `127.0.0.1:${getNetConfig(ma).port}`

    return ma
  }

  afterEach(async () => {
    clients.splice(0).forEach(client => { client instanceof net.Socket ? client.destroy() : client.terminate() })
    await listener?.close()
    await Promise.all(servers.splice(0).map(async server => new Promise(resolve => server.close(resolve))))
    listener = undefined
  })

  it('registers upstream\'s metric groups under upstream\'s names, labels and help', async () => {
    const upstream = recordingMetrics()
    const upstreamTransport = upstreamWebSockets()({
      logger: defaultLogger(),
      events: new TypedEventEmitter<Libp2pEvents>(),
      metrics: upstream.metrics
    })
    await upstreamTransport.createListener({ upgrader: {} as unknown as Upgrader }).close()
    await listen()

    expect([...upstream.registered.keys()]).to.not.be.empty()
    for (const [name, kind] of upstream.registered) {
      expect(recording.registered.get(name), name).to.equal(kind)
      expect(recording.options.get(name), name).to.deep.equal(upstream.options.get(name))
    }
    // ours, beside them
    for (const [name, label] of [['libp2p_websockets_listener_sockets', 'phase'], ['libp2p_websockets_dialer_sockets', 'phase'], ['libp2p_websockets_listener_proxied_total', 'proxy']]) {
      expect(recording.options.get(name), name).to.have.property('label', label)
      expect(recording.options.get(name), name).to.have.property('help').that.is.not.empty()
    }
  })

  it('reports its address as listening, then as closed', async () => {
    await listen()
    await listener?.close()

    expect(recording.updates.get('libp2p_websockets_listener_status_info')).to.deep.equal([{ [addr]: 1 }, { [addr]: 0 }])
  })

  it('counts each socket it accepts and each that closes', async () => {
    const ma = await listen()
    const client = await silentClient(ma)
    clients.push(client)
    await until(() => events().some(event => event[`${addr} connection`] === true), 5_000, 'the socket being counted')

    client.destroy()
    await until(() => events().some(event => event[`${addr} close`] === true), 5_000, 'the close being counted')
  })

  it('counts an upgrade libp2p refused, and the connection\'s abort under the listener\'s address', async () => {
    const ma = await listen({}, async () => { throw new Error('refused by the test') })
    const client = await upgradedClient(ma)
    clients.push(client)

    await withDeadline(closedByServer(client), 5_000, 'the refused connection closing')
    await until(() => errors().some(event => event[`${addr} inbound_upgrade`] === true), 5_000, 'the refusal being counted')
    expect(events()).to.deep.include({ [`${addr} abort`]: true })
  })

  it('counts a request handler that threw', async () => {
    const ma = await listen({ requestHandler: () => { throw new Error('the app broke') } })
    const client = await connect(ma)
    clients.push(client)
    client.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')

    await withDeadline(closedByServer(client), 5_000, 'the request\'s connection being destroyed')
    expect(errors()).to.deep.include({ [`${addr} request_handler`]: true })
    expect(events()).to.deep.include({ [`${addr} http_request`]: true })
  })

  it('counts an error on a socket before its upgrade', async () => {
    const ma = await listen()
    const client = await halfHttpClient(ma)
    await until(() => (listener as TrackingListener).socketCounts().http === 1, 5_000, 'the request reaching the HTTP server')

    // a reset while the HTTP server reads the socket: ECONNRESET there
    client.resetAndDestroy()

    await until(() => events().some(event => event[`${addr} error`] === true), 5_000, 'the socket error being counted')
  })

  it('counts an error of its server, which does not take the process down', async () => {
    await listen()
    const { server } = listener as unknown as { server: net.Server }

    server.emit('error', Object.assign(new Error('accept failed'), { code: 'EMFILE' }))

    expect(errors()).to.deep.equal([{ [`${addr} server_error`]: true }])
  })

  it('reports an attached listener as listening, and counts the upgrades it takes from the user\'s server', async () => {
    const server = http.createServer()
    servers.push(server)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const ma = await listen({ server })
    clients.push(await upgradedClient(ma))

    expect(addr).to.equal(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)
    expect(recording.updates.get('libp2p_websockets_listener_status_info')).to.deep.equal([{ [addr]: 1 }])
    await until(() => events().some(event => event[`${addr} connection`] === true), 5_000, 'the upgrade being counted')
  })

  it('counts a listen that failed', async () => {
    const taken = net.createServer()
    servers.push(taken)
    await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as net.AddressInfo
    recording = recordingMetrics()
    listener = webSockets()({ logger: defaultLogger(), events: new TypedEventEmitter<Libp2pEvents>(), metrics: recording.metrics })
      .createListener({ upgrader: {} as unknown as Upgrader })

    await expect(listener.listen(multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws`))).to.eventually.be.rejected()
      .with.property('code', 'EADDRINUSE')
    expect(errors()).to.deep.equal([{ [`127.0.0.1:${port} listen_error`]: true }])
  })
})
