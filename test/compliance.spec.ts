import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import tests from '@libp2p/interface-compliance-tests/transport'
import { WebSockets, WebSocketsSecure } from '@multiformats/multiaddr-matcher'
import { TRANSPORTS } from '../toolbox/transports.ts'
import { certificate } from './fixtures/certificate.ts'
import type { WebSocketsInit } from '../src/index.ts'
import type { TransportId } from '../toolbox/transports.ts'
import type { MultiaddrMatcher } from '@multiformats/multiaddr-matcher'

interface ComplianceSetup {
  /**
   * The addresses the listening node binds
   */
  listen: string

  /**
   * Matches the addresses under test
   */
  matcher: MultiaddrMatcher

  /**
   * Options of our transport in the dialing node
   */
  dialerInit?: WebSocketsInit

  /**
   * Options of our transport in the listening node
   */
  listenerInit?: WebSocketsInit
}

/**
 * The transport in both nodes: ours, or, when upstream/verify.ts points
 * `UPSTREAM_WEBSOCKETS` at a build of upstream with our patches applied, that
 */
const SUBJECT: TransportId = process.env.UPSTREAM_WEBSOCKETS == null ? 'ours' : 'upstream'

/**
 * Runs the public transport conformance suite with the subject in both
 * nodes, configured as js-libp2p's integration tests configure upstream's
 */
function compliance ({ listen, matcher, dialerInit, listenerInit }: ComplianceSetup): void {
  tests({
    async setup () {
      const common = {
        connectionEncrypters: [
          noise()
        ],
        streamMuxers: [
          yamux()
        ],
        connectionGater: {
          denyDialMultiaddr: () => false
        },
        connectionMonitor: {
          enabled: false
        }
      }

      return {
        dialer: {
          transports: [
            await TRANSPORTS[SUBJECT].load(dialerInit)
          ],
          ...common
        },
        listener: {
          addresses: {
            listen: [
              listen,
              listen
            ]
          },
          transports: [
            await TRANSPORTS[SUBJECT].load({
              ...dialerInit,
              ...listenerInit
            })
          ],
          ...common
        },
        dialMultiaddrMatcher: matcher,
        listenMultiaddrMatcher: matcher
      }
    },
    async teardown () {}
  })
}

describe(`websocket transport interface compliance (${TRANSPORTS[SUBJECT].name})`, () => {
  compliance({
    listen: '/ip4/127.0.0.1/tcp/0/ws',
    matcher: WebSockets
  })
})

// upstream dials with Node.js's TLS defaults, and has no option to trust the
// test certificate: /tls/ws is left to the interop spec there, where ours dials
if (SUBJECT === 'ours') {
  describe('secure websocket transport interface compliance', () => {
    compliance({
      listen: '/ip4/127.0.0.1/tcp/0/tls/ws',
      matcher: WebSocketsSecure,
      listenerInit: {
        https: {
          cert: certificate.cert,
          key: certificate.key
        }
      },
      dialerInit: {
        websocket: {
          ca: certificate.cert
        }
      }
    })
  })
}
