/**
 * TCP sockets as the kernel sees them (Linux): the table of the network
 * namespace a process runs in, and which of its entries the process holds
 * (an open file descriptor) rather than the kernel alone (an orphan still
 * sending its FIN or its unsent data, or a TIME_WAIT). Whether a transport
 * freed a socket is a question for the kernel, not for the transport
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

/**
 * The states of include/net/tcp_states.h, by their number
 */
const STATES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING'
}

export interface TcpSocket {
  state: string

  /**
   * `address:port`
   */
  local: string
  remote: string

  /**
   * Bytes the kernel holds to send (not acknowledged yet) and received but
   * not read yet
   */
  sendQueue: number
  receiveQueue: number

  /**
   * 0 for a socket no process holds
   */
  inode: number
}

/**
 * Parse /proc/net/tcp and /proc/net/tcp6 (any number of them, header lines
 * included)
 */
export function parseTcpTable (text: string): TcpSocket[] {
  const sockets: TcpSocket[] = []

  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/)

    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (fields.length < 10 || !/^\d+:$/.test(fields[0])) {
      continue
    }

    const [sendQueue, receiveQueue] = fields[4].split(':').map(hex => parseInt(hex, 16))

    sockets.push({
      state: STATES[parseInt(fields[3], 16)] ?? fields[3],
      local: decodeAddress(fields[1]),
      remote: decodeAddress(fields[2]),
      sendQueue,
      receiveQueue,
      inode: Number(fields[9])
    })
  }

  return sockets
}

/**
 * `0100007F:1F90` is 127.0.0.1:8080: the address is in host byte order,
 * 32 bit words for IPv6, the port in network order
 */
function decodeAddress (field: string): string {
  const [hex, portHex] = field.split(':')
  const port = parseInt(portHex, 16)
  const words = hex.match(/.{8}/g) ?? []
  const bytes = words.flatMap(word => (word.match(/../g) ?? []).reverse().map(b => parseInt(b, 16)))

  if (bytes.length === 4) {
    return `${bytes.join('.')}:${port}`
  }

  const groups: string[] = []

  for (let i = 0; i < bytes.length; i += 2) {
    groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16))
  }

  // IPv4-mapped addresses read better as IPv4
  if (groups.slice(0, 5).every(g => g === '0') && groups[5] === 'ffff') {
    return `${bytes.slice(12).join('.')}:${port}`
  }

  return `[${groups.join(':')}]:${port}`
}

/**
 * The inodes of the sockets this process has open
 */
export function socketInodes (): Set<number> {
  const inodes = new Set<number>()

  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))

      if (match != null) {
        inodes.add(Number(match[1]))
      }
    } catch {
      // closed while we looked (the fd of readdir itself, for one)
    }
  }

  return inodes
}

/**
 * Open file descriptors of this process, of any kind
 */
export function openFds (): number {
  // minus the one readdir itself opens
  return readdirSync('/proc/self/fd').length - 1
}

/**
 * The TCP table of this process's network namespace
 */
export function namespaceTcpSockets (): TcpSocket[] {
  return parseTcpTable(['/proc/self/net/tcp', '/proc/self/net/tcp6']
    .map(path => { try { return readFileSync(path, 'utf8') } catch { return '' } })
    .join('\n'))
}

/**
 * The TCP sockets this process holds, listening ones left out
 */
export function heldTcpSockets (): TcpSocket[] {
  const inodes = socketInodes()

  return namespaceTcpSockets().filter(socket => socket.inode !== 0 && inodes.has(socket.inode) && socket.state !== 'LISTEN')
}
