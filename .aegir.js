/** @type {import('aegir').PartialOptions} */
export default {
  build: {
    // upstream @libp2p/websockets 10.1.21 bundles to 19.6 KB gzipped
    bundlesize: true,
    bundlesizeMax: '22KB'
  },
  lint: {
    // aegir's defaults name no demo, reproductions, toolbox or upstream
    files: [
      '*.{js,ts}',
      'src/**/*.ts',
      'test/**/*.ts',
      'benchmarks/**/*.ts',
      'demo/**/*.ts',
      'examples/**/*.ts',
      'reproductions/**/*.ts',
      'toolbox/**/*.ts',
      'upstream/**/*.ts'
    ]
  },
  test: {
    // every test bounds its own waits; this only catches a test that forgot to
    timeout: 60_000
  },
  dependencyCheck: {
    ignore: [
      // provides the Node.js 22 runtime npm scripts run on
      'node',
      // loaded by `ws` when present: native WebSocket masking
      'bufferutil',
      // the Node.js 24 runtime the suite also runs on
      'node24',
      // plugins StrykerJS loads by the names in stryker.config.mjs
      '@stryker-mutator/mocha-runner',
      '@stryker-mutator/typescript-checker',
      // the browser suite imports the package by its own name, as users do
      '@cleanstop/libp2p-websockets'
    ],
    productionIgnorePatterns: [
      '/benchmarks',
      '/demo',
      '/examples',
      '/reproductions',
      '/dist',
      '/test',
      '/toolbox',
      '/upstream',
      '.aegir.js'
    ]
  }
}
