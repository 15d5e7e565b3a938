/**
 * The page of the browser suite: page.ts bundled with esbuild for browsers,
 * served over HTTP on 127.0.0.1
 */
import http from 'node:http'
import { join } from 'node:path'
import { bundleForBrowser } from '../fixtures/browser-bundle.ts'

const HTML = '<!doctype html><meta charset="utf-8"><title>cleanstop browser suite</title><script type="module" src="/page.js"></script>'

export interface PageServer {
  url: string
  close(): Promise<void>
}

/**
 * Bundle the page, check it runs the built package with its browser
 * mappings, and serve it
 */
export async function servePage (root: string): Promise<PageServer> {
  const bundle = await bundleForBrowser(join(root, 'test', 'browser', 'page.ts'), root)

  if (bundle.errors.length > 0) {
    throw new Error(`the page did not bundle:\n${bundle.errors.join('\n')}`)
  }

  const dist = join(root, 'dist', 'src')

  if (!bundle.inputs.includes(join(dist, 'web-socket.browser.js')) || bundle.inputs.includes(join(dist, 'web-socket.js'))) {
    throw new Error(`the page bundle does not use ${join(dist, 'web-socket.browser.js')}: is dist/ built?`)
  }

  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(HTML)
    } else if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bundle.code)
    } else {
      res.writeHead(404).end()
    }
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })

  const address = server.address()
  const port = typeof address === 'object' && address != null ? address.port : 0

  return {
    url: `http://127.0.0.1:${port}/`,
    async close () {
      server.closeAllConnections()
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}
