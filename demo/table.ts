import { HAZARDS } from '../toolbox/hazards.ts'
import { TRANSPORTS, TRANSPORT_IDS } from '../toolbox/transports.ts'
import type { Deadlines, Result } from '../toolbox/hazard-run.ts'

export interface TableOptions {
  deadlines: Deadlines
  color: boolean
}

const RED = '\x1b[31m'
const YELLOW = '\x1b[33m'
const RESET = '\x1b[0m'

/**
 * Rows are hazards, columns transports, each cell "stop ms / exit ms" with the
 * two figures aligned on the slash down the column
 */
export function formatTable (results: Result[], options: TableOptions): string {
  const cells = HAZARDS.map(hazard => TRANSPORT_IDS.map(transport => {
    const result = results.find(r => r.hazard === hazard.id && r.transport === transport)

    return cellOf(result, options.deadlines)
  }))

  const labels = HAZARDS.map(hazard => `${hazard.row.padEnd(3)}${hazard.label}`)
  const hazardWidth = Math.max('hazard'.length, ...labels.map(label => label.length))
  const columns = TRANSPORT_IDS.map((transport, column) => {
    const stopWidth = Math.max(...cells.map(row => row[column].stop.length))
    const exitWidth = Math.max(...cells.map(row => row[column].exit.length))

    return {
      name: TRANSPORTS[transport].name,
      stopWidth,
      exitWidth,
      width: Math.max(TRANSPORTS[transport].name.length, stopWidth + 3 + exitWidth)
    }
  })

  const paint = (text: string, color?: string): string => color != null && options.color ? `${color}${text}${RESET}` : text
  const lines = [
    ['hazard'.padEnd(hazardWidth), ...columns.map(column => column.name.padEnd(column.width))].join('   ').trimEnd(),
    ['-'.repeat(hazardWidth), ...columns.map(column => '-'.repeat(column.width))].join('   ')
  ]

  labels.forEach((label, row) => {
    const line = columns.map((column, index) => {
      const cell = cells[row][index]
      const stop = paint(cell.stop.padStart(column.stopWidth), cell.stopColor)
      const exit = paint(cell.exit.padEnd(column.exitWidth), cell.exitColor)
      const text = `${stop} / ${exit}`
      const visible = column.stopWidth + 3 + column.exitWidth

      return text + ' '.repeat(column.width - visible)
    })

    lines.push([label.padEnd(hazardWidth), ...line].join('   ').trimEnd())
  })

  return lines.join('\n')
}

interface Cell {
  stop: string
  exit: string
  stopColor?: string
  exitColor?: string
}

function cellOf (result: Result | undefined, deadlines: Deadlines): Cell {
  if (result == null) {
    return { stop: 'not run', exit: '-' }
  }

  if (result.cutOff === true) {
    return { stop: 'cut off', exit: '-' }
  }

  if (result.stopMs == null && !result.stopHang) {
    return { stop: 'error', exit: '-', stopColor: YELLOW }
  }

  if (result.stopHang) {
    // the exit that would follow was never measured
    return { stop: `HANG >${seconds(deadlines.stopMs)}`, exit: '-', stopColor: RED }
  }

  if (result.exitHang) {
    return { stop: ms(result.stopMs), exit: `HANG >${seconds(deadlines.exitMs)}`, exitColor: RED }
  }

  return {
    stop: ms(result.stopMs) + (result.error != null ? '!' : ''),
    exit: ms(result.exitMs)
  }
}

function ms (value?: number): string {
  return value == null ? '-' : String(Math.round(value))
}

function seconds (value: number): string {
  return `${value / 1000}s`
}
