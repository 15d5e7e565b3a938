/**
 * The one table upstream/verify.ts prints: a row per patch (its lines, the
 * reproduction it must turn from DEFECT to OK, and how many reproductions are
 * OK before and after it), then a row per check of the fully patched build
 */

export interface Row {
  patch: string
  lines?: string
  check?: string
  before?: string
  after?: string
  detail?: string

  /**
   * Marks the row as failed
   */
  failed?: boolean
}

const HEADERS: Record<keyof Omit<Row, 'failed'>, string> = {
  patch: 'patch',
  lines: 'lines',
  check: 'reproduction / check',
  before: 'before',
  after: 'after',
  detail: 'all reproductions OK / detail'
}

const COLUMNS = Object.keys(HEADERS) as Array<keyof typeof HEADERS>

export function formatTable (rows: Row[]): string {
  const text = (row: Row, column: keyof typeof HEADERS): string => row[column] ?? ''
  const widths = COLUMNS.map(column => Math.max(HEADERS[column].length, ...rows.map(row => text(row, column).length)))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()

  return [
    line(COLUMNS.map(column => HEADERS[column])),
    line(widths.map(width => '-'.repeat(width))),
    ...rows.map(row => `${line(COLUMNS.map(column => text(row, column)))}${row.failed === true ? '  <- FAILED' : ''}`)
  ].join('\n')
}
