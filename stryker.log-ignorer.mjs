/**
 * A Stryker ignorer: mutants inside a logging statement (`log(...)`,
 * `this.log(...)`, `log.error(...)`, `this.init.log.error(...)`) are left out
 * of the score. They change the text of a debug log line and nothing a peer, a
 * caller or a metric can see, so no test could kill them: each would stand as
 * one more equivalent survivor. Metrics and errors are not logging, and stay
 * mutated
 */

/**
 * A logger: `log`, or any `<something>.log`
 *
 * @param {import('@babel/types').Node} node
 * @returns {boolean}
 */
function isLogger (node) {
  return (node.type === 'Identifier' && node.name === 'log') ||
    (node.type === 'MemberExpression' && node.property.type === 'Identifier' && node.property.name === 'log')
}

/**
 * A call of a logger, or of one of its levels (`log.error`, `log.trace`)
 *
 * @param {import('@babel/types').Node} callee
 * @returns {boolean}
 */
function isLogCall (callee) {
  return isLogger(callee) ||
    (callee.type === 'MemberExpression' && callee.property.type === 'Identifier' && ['error', 'trace'].includes(callee.property.name) && isLogger(callee.object))
}

class LogIgnorer {
  /**
   * @param {import('@babel/core').NodePath} path
   * @returns {string | undefined}
   */
  shouldIgnore (path) {
    if (path.isExpressionStatement() && path.node.expression.type === 'CallExpression' && isLogCall(path.node.expression.callee)) {
      return 'Log text: no peer, caller or metric sees it'
    }

    return undefined
  }
}

// what `declareClassPlugin(PluginKind.Ignore, ...)` of @stryker-mutator/api
// returns, written out so that this file needs no import
export const strykerPlugins = [{ kind: 'Ignore', name: 'log-ignorer', injectableClass: LogIgnorer }]
