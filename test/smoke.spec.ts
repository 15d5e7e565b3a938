import { expect } from 'aegir/chai'
import { createNode } from './fixtures/nodes.ts'

describe('smoke', () => {
  it('dials', async () => {
    const a = await createNode()
    const b = await createNode({ listen: [] })
    console.log(a.getMultiaddrs().map(String))
    const conn = await b.dial(a.getMultiaddrs()[0])
    expect(conn.status).to.equal('open')
    const t0 = Date.now()
    await b.stop()
    await a.stop()
    console.log('stopped in', Date.now() - t0)
  })
})
