/**
 * One port for an HTTP app and libp2p: the app's own `http.Server` listens,
 * and the transport takes only its WebSocket upgrade requests.
 *
 * Run `node examples/shared-port.ts [port]`,
 * then `curl http://127.0.0.1:<port>/health`, and dial the printed multiaddr
 * with any libp2p peer. Ctrl-C stops the node (closing every libp2p
 * connection) and then the app.
 *
 * In your own code, import from '@cleanstop/libp2p-websockets'
 */
import http from 'node:http'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { createLibp2p } from 'libp2p'
import { webSockets } from '../src/index.ts'

const port = Number(process.argv[2] ?? 0)

const app = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end(req.url === '/health' ? 'ok\n' : 'hello from the app\n')
})

await new Promise<void>(resolve => app.listen(port, '127.0.0.1', resolve))

const node = await createLibp2p({
  // one /ws address: the host and port are the app server's
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0/ws'] },
  transports: [
    webSockets({
      server: app,
      // the app may have WebSocket endpoints of its own elsewhere
      upgradePath: '/'
    })
  ],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()]
})

const address = app.address()
process.stdout.write(`app: http://127.0.0.1:${typeof address === 'object' && address != null ? address.port : port}/health\n`)
node.getMultiaddrs().forEach(ma => { process.stdout.write(`libp2p: ${ma.toString()}\n`) })

process.once('SIGINT', () => {
  void (async () => {
    // the node first: it terminates its WebSocket connections and leaves the
    // app server and its connections alone
    await node.stop()
    app.closeAllConnections()
    app.close()
  })()
})
