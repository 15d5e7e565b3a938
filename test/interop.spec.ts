import { randomBytes } from 'node:crypto'
import { stop } from '@libp2p/interface'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { expect } from 'aegir/chai'
import { pEvent } from 'p-event'
import { webSockets } from '../src/index.ts'
import { echo, handleEcho } from '../toolbox/echo.ts'
import { createNode } from '../toolbox/node.ts'
import { TRANSPORTS } from '../toolbox/transports.ts'
import { certificate } from './fixtures/certificate.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { MultiaddrMatcher } from '@multiformats/multiaddr-matcher'

/**
 * Bytes sent through each echo stream: several noise frames and yamux windows
 */
const PAYLOAD_SIZE = 512 * 1024

function addressOf (node: Libp2p, matcher: MultiaddrMatcher): Multiaddr {
  const ma = node.getMultiaddrs().find(ma => matcher.exactMatch(ma))

  if (ma == null) {
    throw new Error(`${node.peerId} has no address matching the transport under test`)
  }

  return ma
}

// upstream/verify.ts runs this against upstream with our patches applied
describe(`interop with ${TRANSPORTS.upstream.name}`, function () {
  this.timeout(30_000)

  let nodes: Libp2p[]

  beforeEach(() => {
    nodes = []
  })

  afterEach(async () => {
    await stop(...nodes)
  })

  async function exchange (dialer: Libp2p, listener: Libp2p, matcher: MultiaddrMatcher): Promise<void> {
    await handleEcho(listener)

    const ma = addressOf(listener, matcher)
    const input = new Uint8Array(randomBytes(PAYLOAD_SIZE))
    const output = await echo(dialer, ma, input, {
      signal: AbortSignal.timeout(10_000)
    })

    expect(output).to.equalBytes(input)

    const outbound = dialer.getConnections(listener.peerId)
    expect(outbound).to.have.lengthOf(1)
    expect(outbound[0].direction).to.equal('outbound')
    expect(matcher.exactMatch(outbound[0].remoteAddr)).to.be.true()

    const inbound = listener.getConnections(dialer.peerId)
    expect(inbound).to.have.lengthOf(1)
    expect(inbound[0].direction).to.equal('inbound')
    expect(inbound[0].remoteAddr.toString()).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\//)

    // the listener learns that the dialer went away, whichever implementation
    // each side runs
    const closed = pEvent(listener, 'connection:close', {
      signal: AbortSignal.timeout(5_000)
    })

    await dialer.stop()
    await closed

    expect(listener.getConnections(dialer.peerId)).to.be.empty()

    await listener.stop()

    expect(dialer.status).to.equal('stopped')
    expect(listener.status).to.equal('stopped')
  }

  it('ours dials upstream over /ws', async () => {
    const upstream = await createNode({
      transport: 'upstream'
    })
    nodes.push(upstream)
    const ours = await createNode()
    nodes.push(ours)

    await exchange(ours, upstream, WebSockets)
  })

  it('upstream dials ours over /ws', async () => {
    const ours = await createNode()
    nodes.push(ours)
    const upstream = await createNode({
      transport: 'upstream'
    })
    nodes.push(upstream)

    await exchange(upstream, ours, WebSockets)
  })

  it('ours dials upstream over /tls/ws', async () => {
    const upstream = await createNode({
      listen: ['/ip4/127.0.0.1/tcp/0/tls/ws'],
      transport: 'upstream',
      init: {
        https: {
          cert: certificate.cert,
          key: certificate.key
        }
      }
    })
    nodes.push(upstream)
    const ours = await createNode({
      init: {
        websocket: {
          ca: certificate.cert
        }
      }
    })
    nodes.push(ours)

    await exchange(ours, upstream, WebSocketsSecure)
  })

  it('ours and upstream dial each other at the same time and both exchange data', async () => {
    const ours = await createNode({
      transport: webSockets()
    })
    nodes.push(ours)
    const upstream = await createNode({
      transport: 'upstream'
    })
    nodes.push(upstream)

    await Promise.all([
      handleEcho(ours),
      handleEcho(upstream)
    ])

    const fromOurs = new Uint8Array(randomBytes(PAYLOAD_SIZE))
    const fromUpstream = new Uint8Array(randomBytes(PAYLOAD_SIZE))

    const [toUpstream, toOurs] = await Promise.all([
      echo(ours, addressOf(upstream, WebSockets), fromOurs, {
        signal: AbortSignal.timeout(10_000)
      }),
      echo(upstream, addressOf(ours, WebSockets), fromUpstream, {
        signal: AbortSignal.timeout(10_000)
      })
    ])

    expect(toUpstream).to.equalBytes(fromOurs)
    expect(toOurs).to.equalBytes(fromUpstream)

    await stop(ours, upstream)

    expect(ours.getConnections()).to.be.empty()
    expect(upstream.getConnections()).to.be.empty()
  })
})
