/**
 * Samples of one figure for one transport, and what the report shows of them
 */
export interface Summary {
  median: number | null
  min: number | null
  max: number | null
  samples: Array<number | null>
}

export function summarize (samples: Array<number | null | undefined>): Summary {
  const values = samples.filter((v): v is number => v != null && Number.isFinite(v)).sort((a, b) => a - b)

  if (values.length === 0) {
    return { median: null, min: null, max: null, samples: samples.map(v => v ?? null) }
  }

  const mid = Math.floor(values.length / 2)
  const median = values.length % 2 === 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2

  return { median, min: values[0], max: values[values.length - 1], samples: samples.map(v => v ?? null) }
}

export function ratio (a: number | null, b: number | null): number | null {
  if (a == null || b == null || b === 0) {
    return null
  }

  return a / b
}
