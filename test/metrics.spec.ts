import { defaultLogger } from '@libp2p/logger'
import { getNetConfig } from '@libp2p/utils'
import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import { webSockets } from '../src/index.ts'
import { silentServer } from '../toolbox/silent-server.ts'
import { halfHttpClient, silentClient } from '../toolbox/stalled-clients.ts'
import { LOOPBACK_WS } from './fixtures/bare-listener.ts'
import { until } from './fixtures/deadline.ts'
import { recordingMetrics } from './fixtures/recording-metrics.ts'
import type { SilentServer } from '../toolbox/silent-server.ts'
import type { Libp2pEvents, Listener, Transport, Upgrader } from '@libp2p/interface'
import type net from 'node:net'

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
