/** @type {import('aegir').PartialOptions} */
export default {
  build: {
    bundlesizeMax: '40KB'
  },
  test: {
    // every test bounds its own waits; this only catches a test that forgot to
    timeout: 60_000
  },
  dependencyCheck: {
    ignore: [
      // provides the Node.js 22 runtime npm scripts run on
      'node'
    ]
  }
}
