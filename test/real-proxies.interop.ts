import { existsSync } from 'node:fs'
import { stop } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { echo } from '../toolbox/echo.ts'
import { withDeadline, until } from './fixtures/deadline.ts'
import { dialerNode, listeningNode } from './fixtures/nodes.ts'
import { freePort, INSTALL_HINT, missingBinaries, nginxHasStream, runProxy } from './fixtures/real-proxy.ts'
import type { ListeningNode } from './fixtures/nodes.ts'
import type { RealProxy } from './fixtures/real-proxy.ts'
import type { Libp2p } from '@libp2p/interface'

/**
 * Not part of `npm test`: `npm run test:proxies` runs it, with HAProxy and
 * nginx (and nginx's stream module) from the system's packages. Everything is
 * on 127.0.0.1, ports chosen now, the proxies our children in the foreground
 */
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'

describe('behind real proxies: HAProxy and nginx', function () {
  this.timeout(60_000)

  const nodes: Libp2p[] = []
  const proxies: RealProxy[] = []
  // set once, before the tests, which are made in a loop
  const listening: { proxyProtocol?: ListeningNode, forwarded?: ListeningNode } = {}
  const ports: Record<'haproxyV1' | 'haproxyV2' | 'nginxStream' | 'nginxHttp', number> = { haproxyV1: 0, haproxyV2: 0, nginxStream: 0, nginxHttp: 0 }

  before(async () => {
    const missing = missingBinaries(['haproxy', 'nginx'])

    if (missing.length > 0) {
      throw new Error(`npm run test:proxies needs ${missing.join(' and ')}, which cannot be run here. Install them with: ${INSTALL_HINT}`)
    }

    if (!nginxHasStream(STREAM_MODULE)) {
      throw new Error(`npm run test:proxies needs nginx's stream module, which is not installed. Install it with: ${INSTALL_HINT}`)
    }

    const proxyProtocolNode = listening.proxyProtocol = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'], proxyProtocol: true })
    const forwardedNode = listening.forwarded = await listeningNode(nodes, { trustedProxies: ['127.0.0.1'] })

    for (const name of Object.keys(ports) as Array<keyof typeof ports>) {
      ports[name] = await freePort()
    }

    proxies.push(await runProxy('haproxy', 'haproxy.cfg', () => `
global
  maxconn 100

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend v1
  bind 127.0.0.1:${ports.haproxyV1}
  default_backend v1

backend v1
  server node 127.0.0.1:${proxyProtocolNode.port} send-proxy

frontend v2
  bind 127.0.0.1:${ports.haproxyV2}
  default_backend v2

backend v2
  server node 127.0.0.1:${proxyProtocolNode.port} send-proxy-v2
`, ['-db', '-f', '{config}'], [ports.haproxyV1, ports.haproxyV2]))

    proxies.push(await runProxy('nginx', 'nginx.conf', dir => `
${existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};` : ''}
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;

events {
  worker_connections 128;
}

stream {
  server {
    listen 127.0.0.1:${ports.nginxStream};
    proxy_pass 127.0.0.1:${proxyProtocolNode.port};
    proxy_protocol on;
  }
}

http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }

  server {
    listen 127.0.0.1:${ports.nginxHttp};

    location / {
      proxy_pass http://127.0.0.1:${forwardedNode.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1h;
    }
  }
}
`, ['-p', '{dir}', '-e', '{dir}/error.log', '-c', '{config}'], [ports.nginxStream, ports.nginxHttp]))
  })

  after(async () => {
    await withDeadline(stop(...nodes), 10_000, 'stopping the nodes')
    await Promise.all(proxies.map(async proxy => proxy.stop()))
  })

  /**
   * Dial `node` through the proxy on `port` from a fresh peer, exchange some
   * data, and return the remote address the node sees, without the peer id
   */
  async function dialThrough (node: ListeningNode | undefined, port: number, websocket: Record<string, unknown> = {}): Promise<string> {
    if (node == null) {
      throw new Error('the nodes did not start')
    }

    const dialer = await dialerNode(nodes, { websocket })
    const ma = multiaddr(`/ip4/127.0.0.1/tcp/${port}/ws/p2p/${node.node.peerId.toString()}`)
    const input = new Uint8Array(32 * 1024).fill(5)

    expect(await echo(dialer, ma, input, { signal: AbortSignal.timeout(10_000) })).to.equalBytes(input)
    await until(() => node.node.getConnections(dialer.peerId).length > 0, 5_000, 'the inbound connection')

    return node.node.getConnections(dialer.peerId)[0].remoteAddr.toString().replace(/\/p2p\/[^/]+$/, '')
  }

  for (const [name, port] of [['HAProxy send-proxy', 'haproxyV1'], ['HAProxy send-proxy-v2', 'haproxyV2'], ['nginx stream proxy_protocol', 'nginxStream']] as const) {
    it(`${name}: the node sees the dialer's own address and port, not the proxy's`, async () => {
      // the dialer's port is the one thing telling it apart from the proxy
      // on loopback: fix it, so that the PROXY header must have carried it
      const localPort = await freePort()

      expect(await dialThrough(listening.proxyProtocol, ports[port], { localAddress: '127.0.0.1', localPort })).to.equal(`/ip4/127.0.0.1/tcp/${localPort}/ws`)
    })
  }

  it('nginx http with X-Forwarded-For and a WebSocket upgrade: the node sees the forwarded client', async () => {
    // nginx appends the dialer's address, 127.0.0.1, itself trusted: the
    // client is the address the dialer's own request named before it
    expect(await dialThrough(listening.forwarded, ports.nginxHttp, { headers: { 'X-Forwarded-For': '192.0.2.61' } })).to.equal('/ip4/192.0.2.61/tcp/0/ws')

    // and with no header of the dialer's, the address nginx saw
    expect(await dialThrough(listening.forwarded, ports.nginxHttp)).to.equal('/ip4/127.0.0.1/tcp/0/ws')
  })
})
