import { UnsupportedOperationError } from '@libp2p/interface'
import type { Listener } from '@libp2p/interface'

export function createListener (): Listener {
  throw new UnsupportedOperationError('WebSocket servers can not be created in the browser, this transport can only dial from here')
}
