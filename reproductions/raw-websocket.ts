/**
 * A WebSocket client written byte by byte, to send what no WebSocket library
 * would: reserved opcodes, huge frames, unfinished requests
 */
import net from 'node:net'

/**
 * Connect to a loopback port and leave the socket as it is
 */
export async function connect (port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port })

  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })

  // whatever the server does to the socket is what we observe, not an error
  socket.on('error', () => {})

  return socket
}

/**
 * Connect and complete a WebSocket upgrade. Frames the server sends later are
 * read by `closeCode`
 */
export async function upgrade (port: number): Promise<net.Socket> {
  const socket = await connect(port)

  socket.write([
    'GET / HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))

  const response = await new Promise<string>((resolve, reject) => {
    let received = ''
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('latin1')
      const end = received.indexOf('\r\n\r\n')

      if (end !== -1) {
        socket.off('data', onData)
        socket.off('close', onClose)
        // anything after the headers is the start of the first frame
        const rest = Buffer.from(received.slice(end + 4), 'latin1')
        if (rest.byteLength > 0) {
          socket.unshift(rest)
        }
        resolve(received.slice(0, end))
      }
    }
    const onClose = (): void => { reject(new Error(`Socket closed during the upgrade: ${received}`)) }
    socket.on('data', onData)
    socket.once('close', onClose)
  })

  if (!response.startsWith('HTTP/1.1 101')) {
    socket.destroy()
    throw new Error(`Upgrade refused: ${response.split('\r\n')[0]}`)
  }

  return socket
}

/**
 * The header of a client frame: masked, as the protocol requires of clients,
 * with an all-zero mask key so the payload goes as is
 */
export function frameHeader (opcode: number, length: number): Buffer {
  const fin = 0x80
  const mask = 0x80
  const key = Buffer.alloc(4)

  if (length < 126) {
    return Buffer.concat([Buffer.from([fin | opcode, mask | length]), key])
  }

  if (length < 0x10000) {
    const header = Buffer.from([fin | opcode, mask | 126, 0, 0])
    header.writeUInt16BE(length, 2)
    return Buffer.concat([header, key])
  }

  const header = Buffer.from([fin | opcode, mask | 127, 0, 0, 0, 0, 0, 0, 0, 0])
  header.writeBigUInt64BE(BigInt(length), 2)
  return Buffer.concat([header, key])
}

/**
 * Resolves with the status code of the first close frame the server sends,
 * or `undefined` if the socket closes without one. Destroys the socket once
 * the close frame is in, as a client would
 */
export async function closeCode (socket: net.Socket): Promise<number | undefined> {
  return new Promise(resolve => {
    let received = Buffer.alloc(0)

    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])

      // server frames are not masked; a close frame is short
      while (received.byteLength >= 2) {
        const opcode = received[0] & 0x0f
        const length = received[1] & 0x7f

        if (length >= 126 || received.byteLength < 2 + length) {
          return
        }

        if (opcode === 0x8) {
          resolve(length >= 2 ? received.readUInt16BE(2) : undefined)
          socket.destroy()
          return
        }

        received = received.subarray(2 + length)
      }
    })
    socket.once('close', () => { resolve(undefined) })
  })
}
