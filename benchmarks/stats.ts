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

/**
 * The least-squares slope of `y` over `x`: growth per unit of `x`, steadier
 * than last minus first when samples are noisy (heap after GC)
 */
export function slope (x: number[], y: number[]): number | null {
  if (x.length < 2 || x.length !== y.length) {
    return null
  }

  const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length
  const mx = mean(x)
  const my = mean(y)
  let covariance = 0
  let variance = 0

  for (let i = 0; i < x.length; i++) {
    covariance += (x[i] - mx) * (y[i] - my)
    variance += (x[i] - mx) ** 2
  }

  return variance === 0 ? null : covariance / variance
}
