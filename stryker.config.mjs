/**
 * Mutation testing with StrykerJS: `npm run mutation`, or for one file
 * `npm run mutation -- --mutate src/socket-registry.ts`.
 *
 * Stryker mutates src/*.ts in a sandbox, `buildCommand` compiles the sandbox
 * with tsc as `aegir build` does, and mocha runs the compiled specs there, so
 * the tests run exactly as `npm run test:node` runs them. Mutants that do not
 * compile are rejected by the TypeScript checker before any test runs.
 *
 * The script runs it on Node.js 24, the newer of the two lines the suite
 * runs on.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  mutate: [
    'src/**/*.ts',
    // the browser variants are one-line re-exports, and no Node.js test loads them
    '!src/**/*.browser.ts'
  ],
  testRunner: 'mocha',
  // the runner, the checker, and our ignorer of log lines (see that file)
  plugins: ['@stryker-mutator/*', './stryker.log-ignorer.mjs'],
  ignorers: ['log-ignorer'],
  mochaOptions: {
    // the specs that exercise src/ logic in-process. Left out as too slow for
    // one run per mutant, or as not testing src/ logic: package, bundle, load,
    // fuzz, process-exit (child processes), compliance, interop, browser
    spec: [
      'dist/test/backpressure.spec.js',
      'dist/test/client-address.spec.js',
      'dist/test/data-frames.spec.js',
      'dist/test/dial.spec.js',
      'dist/test/hostile-peers.spec.js',
      'dist/test/inbound-connections.spec.js',
      'dist/test/inbound-sockets.spec.js',
      'dist/test/lifecycle.spec.js',
      'dist/test/limits.spec.js',
      'dist/test/listener-close.spec.js',
      'dist/test/listener.spec.js',
      'dist/test/metrics.spec.js',
      'dist/test/proxies.spec.js',
      'dist/test/proxy-protocol.spec.js',
      'dist/test/served-connection.spec.js',
      'dist/test/shared-port.spec.js',
      'dist/test/shutdown-inbound.spec.js',
      'dist/test/shutdown-outbound.spec.js',
      'dist/test/socket-registry.spec.js',
      'dist/test/transport.spec.js',
      'dist/test/upstream-parity.spec.js',
      'dist/test/utils.spec.js',
      'dist/test/websocket-to-conn.spec.js'
    ]
  },
  // the instrumented sources hold every mutant at once and are not
  // type-correct (Stryker marks them @ts-nocheck): emit them regardless. The
  // checker judges each mutant on its own
  buildCommand: 'tsc -p tsconfig.json --noEmitOnError false',
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  coverageAnalysis: 'perTest',
  // results of earlier runs live in reports/ (gitignored): only mutants whose
  // code or covering tests changed run again
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  // the suite opens real sockets and has timing bounds of its own: one test
  // runner at a time keeps a shared two-core machine from skewing them
  concurrency: 1,
  // a mutant that hangs a socket shows as a timeout; real network round
  // trips on a busy machine need some slack above the dry run's times
  timeoutMS: 10_000,
  // dist/ is not ignored: Stryker reads the compiled specs there to see which
  // tests changed since the last run (the script builds first)
  ignorePatterns: [
    'coverage',
    '.coverage',
    '.docs',
    'benchmarks/results',
    '*.log'
  ],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: {
    fileName: 'reports/mutation/mutation.html'
  },
  jsonReporter: {
    fileName: 'reports/mutation/mutation.json'
  },
  tempDirName: '.stryker-tmp'
}
