/**
 * A real network path for one scenario: two network namespaces of our own
 * joined by a veth pair, the node under test at 10.231.0.1 in one, its peer at
 * 10.231.0.2 in the other, and nothing else in either. `cut()` takes the
 * peer's end of the link down: from then on every packet either way vanishes,
 * with no FIN, no RST and no ICMP error, as when a cable is pulled or a NAT
 * mapping expires. Needs root (`ip netns`, iproute2).
 *
 * The addresses exist only inside these namespaces, never in the host's, so
 * no traffic of a scenario can leave them. Every namespace made here is
 * deleted when the scenario ends, when the process exits however it exits
 * (SIGKILL aside), and, failing that, by the next run (`sweepStaleNamespaces`)
 */
import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * Our namespaces are named `<PREFIX>-<pid of the creating process>-<n>-<role>`
 */
const PREFIX = 'cleanstop'

/**
 * A /30: the two ends of the veth pair and nothing else
 */
export const NODE_ADDRESS = '10.231.0.1'
export const PEER_ADDRESS = '10.231.0.2'
const PREFIX_LENGTH = 30

// locally administered, fixed, so that each end can know the other's without
// asking: the neighbour entries below are permanent
const NODE_MAC = '02:00:0a:e7:00:01'
const PEER_MAC = '02:00:0a:e7:00:02'

const NODE_LINK = 'veth-node'
const PEER_LINK = 'veth-peer'

// namespaces that exist now and are ours to delete
const created = new Set<string>()
let counter = 0
let exitHandled = false

export interface NetnsPair {
  /**
   * The namespace of the node under test
   */
  node: string

  /**
   * The namespace of its peer
   */
  peer: string

  /**
   * The peer's end of the link goes down. Both ends keep their addresses and
   * their permanent neighbour entries, so that nothing is reported to either
   * side: packets are dropped where the link ends
   */
  cut(): Promise<void>

  /**
   * The peer's end comes back up
   */
  restore(): Promise<void>

  /**
   * Delete both namespaces. Processes still inside keep them alive until
   * they exit; the names are gone at once
   */
  destroy(): Promise<void>
}

async function ip (...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args)

  return stdout
}

/**
 * Why this machine cannot run the namespace scenarios, or undefined if it
 * can: root, iproute2, and a kernel that lets us create a namespace
 */
export async function netnsUnavailable (): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    return 'the network namespace scenarios need root (ip netns add): run as root'
  }

  try {
    await run('ip', ['-V'])
  } catch {
    return '`ip` was not found: install iproute2 (apt-get install -y iproute2)'
  }

  const name = `${PREFIX}-${process.pid}-probe`

  try {
    await ip('netns', 'add', name)
    await ip('netns', 'del', name)
  } catch (err: any) {
    return `cannot create a network namespace: ${String(err.stderr ?? err.message).trim()}`
  }
}

/**
 * Delete namespaces left by runs of ours that were killed before they could
 * clean up: their creating process is gone
 */
export async function sweepStaleNamespaces (): Promise<string[]> {
  const swept: string[] = []
  const names = (await ip('netns', 'list'))
    .split('\n')
    .map(line => line.split(' ')[0])

  for (const name of names) {
    const match = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name)

    if (match == null || isAlive(Number(match[1]))) {
      continue
    }

    try {
      await ip('netns', 'del', name)
      swept.push(name)
    } catch {
      // someone else swept it first
    }
  }

  return swept
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err.code === 'EPERM'
  }
}

/**
 * Two fresh namespaces joined by a veth pair, both ends up, addressed and
 * with permanent neighbour entries for each other
 */
export async function createNetnsPair (): Promise<NetnsPair> {
  deleteAllOnExit()

  const id = `${PREFIX}-${process.pid}-${counter++}`
  const node = `${id}-node`
  const peer = `${id}-peer`

  const pair: NetnsPair = {
    node,
    peer,
    cut: async () => {
      await ip('-n', peer, 'link', 'set', PEER_LINK, 'down')
    },
    restore: async () => {
      await ip('-n', peer, 'link', 'set', PEER_LINK, 'up')
      // a link going down flushes its own neighbour entries, permanent ones
      // included: without them the peer would have to ask with ARP again
      await addNeighbours(pair)
    },
    destroy: async () => {
      for (const name of [node, peer]) {
        if (created.delete(name)) {
          await ip('netns', 'del', name).catch(() => {})
        }
      }
    }
  }

  try {
    for (const name of [node, peer]) {
      await ip('netns', 'add', name)
      created.add(name)
    }

    // made inside the namespaces, never in the host's
    await ip('link', 'add', NODE_LINK, 'netns', node, 'address', NODE_MAC, 'type', 'veth',
      'peer', 'name', PEER_LINK, 'netns', peer, 'address', PEER_MAC)
    await ip('-n', node, 'addr', 'add', `${NODE_ADDRESS}/${PREFIX_LENGTH}`, 'dev', NODE_LINK)
    await ip('-n', peer, 'addr', 'add', `${PEER_ADDRESS}/${PREFIX_LENGTH}`, 'dev', PEER_LINK)

    for (const [name, link] of [[node, NODE_LINK], [peer, PEER_LINK]]) {
      await ip('-n', name, 'link', 'set', 'lo', 'up')
      await ip('-n', name, 'link', 'set', link, 'up')
    }

    await addNeighbours(pair)
  } catch (err) {
    await pair.destroy()
    throw err
  }

  return pair
}

/**
 * Without a neighbour entry, a link that stops answering fails ARP after a
 * few seconds, and the kernel reports that to the sockets sending through it
 * (EHOSTUNREACH): a connect would fail fast instead of its SYN vanishing
 */
async function addNeighbours (pair: NetnsPair): Promise<void> {
  await ip('-n', pair.node, 'neigh', 'replace', PEER_ADDRESS, 'lladdr', PEER_MAC, 'dev', NODE_LINK, 'nud', 'permanent')
  await ip('-n', pair.peer, 'neigh', 'replace', NODE_ADDRESS, 'lladdr', NODE_MAC, 'dev', PEER_LINK, 'nud', 'permanent')
}

/**
 * The kernel's TCP table inside a namespace (/proc/net/tcp as a process
 * there reads it): what is left once the processes are gone
 */
export async function tcpTableOf (namespace: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', namespace, 'cat', '/proc/net/tcp', '/proc/net/tcp6'])

  return stdout
}

function deleteAllOnExit (): void {
  if (exitHandled) {
    return
  }

  exitHandled = true

  // an 'exit' handler may only do synchronous work
  process.on('exit', () => {
    for (const name of created) {
      spawnSync('ip', ['netns', 'del', name])
    }

    created.clear()
  })
}
