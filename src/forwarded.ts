/**
 * One hop of an RFC 7239 `Forwarded` header: the `for` node a proxy saw, and
 * the protocol that hop used, if the proxy said
 */
export interface ForwardedHop {
  /**
   * An IPv4 or IPv6 address (no brackets), or the identifier as sent when it
   * is not one (`unknown`, an obfuscated `_name`)
   */
  host: string

  /**
   * Absent when the node has no port or an obfuscated one
   */
  port?: number

  /**
   * The `proto` parameter, lower-cased
   */
  proto?: string
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const PORT = /^(0|[1-9][0-9]{0,4})$/

/**
 * A token or a quoted string (unquoted) starting at `start`, and where it
 * ends; undefined if there is neither
 */
function readValue (header: string, start: number): { value: string, end: number } | undefined {
  let i = start

  if (header[i] !== '"') {
    while (i < header.length && !',; \t'.includes(header[i])) {
      i++
    }

    const value = header.slice(start, i)

    return TOKEN.test(value) ? { value, end: i } : undefined
  }

  let value = ''
  i++

  while (i < header.length && header[i] !== '"') {
    if (header[i] === '\\') {
      i++
    }

    value += header[i] ?? ''
    i++
  }

  return header[i] === '"' ? { value, end: i + 1 } : undefined
}

/**
 * Split a header into elements (`,`) of pairs (`;`), outside quoted strings,
 * unquoting values. Undefined if the header does not follow the grammar
 */
function parseElements (header: string): Array<Map<string, string>> | undefined {
  const elements: Array<Map<string, string>> = []
  let element = new Map<string, string>()
  let i = 0

  const skipSpace = (): void => {
    while (header[i] === ' ' || header[i] === '\t') {
      i++
    }
  }

  while (i <= header.length) {
    skipSpace()

    if (i === header.length) {
      elements.push(element)
      break
    }

    if (header[i] === ',' || header[i] === ';') {
      // empty pairs and elements are allowed by the grammar
      if (header[i] === ',') {
        elements.push(element)
        element = new Map()
      }

      i++
      continue
    }

    const equals = header.indexOf('=', i)

    if (equals === -1) {
      return
    }

    const name = header.slice(i, equals).trim().toLowerCase()

    if (!TOKEN.test(name) || element.has(name)) {
      // RFC 7239 4: a parameter must not occur more than once per element
      return
    }

    const value = readValue(header, equals + 1)

    if (value == null) {
      return
    }

    i = value.end
    element.set(name, value.value)
    skipSpace()

    if (i < header.length && header[i] !== ',' && header[i] !== ';') {
      return
    }
  }

  return elements
}

/**
 * Split an RFC 7239 node (`192.0.2.1:80`, `[2001:db8::1]:80`, `unknown`,
 * `_hidden:_port`) into its name and port
 */
function parseNode (node: string): { host: string, port?: number } {
  let host = node
  let port: string | undefined

  if (node.startsWith('[')) {
    const close = node.indexOf(']')
    host = close === -1 ? node : node.slice(1, close)
    port = close === -1 || node[close + 1] !== ':' ? undefined : node.slice(close + 2)
  } else if (node.split(':').length === 2) {
    [host, port] = node.split(':')
  }

  return {
    host,
    port: port != null && PORT.test(port) && Number(port) <= 65_535 ? Number(port) : undefined
  }
}

/**
 * The hops of an RFC 7239 `Forwarded` header, client side first, as the
 * header lists them. Elements without a `for` parameter are hops whose
 * proxies did not say, so they read as `unknown`. Undefined if there is no
 * header or it does not follow the grammar: then it says nothing we can use
 */
export function parseForwarded (header: string | string[] | undefined): ForwardedHop[] | undefined {
  if (header == null) {
    return
  }

  const elements = parseElements(Array.isArray(header) ? header.join(', ') : header)

  if (elements == null) {
    return
  }

  return elements.map(element => ({
    ...parseNode(element.get('for') ?? 'unknown'),
    proto: element.get('proto')?.toLowerCase()
  }))
}
