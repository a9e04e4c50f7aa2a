/** Nearest-rank percentile of the first `count` values (sorts a copy). */
export function percentile(values: ArrayLike<number>, p: number, count = values.length): number {
  if (count <= 0) return Number.NaN;
  const sorted = Float64Array.from({ length: count }, (_, i) => values[i] ?? Number.NaN).sort();
  const rank = Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Nearest-rank median: with an even count, the lower of the two middle values. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  return percentile(finite, 50);
}

/** The textbook median: with an even count, the mean of the two middle values. */
export function midpoint(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
}

/**
 * Latencies in log-spaced buckets (2 % wide), so every sample of a run can be kept in constant
 * memory: a growing array would add to the very RSS the bench compares.
 */
export class LogHistogram {
  static readonly #base = Math.log(1.02);
  readonly counts = new Uint32Array(1200);
  total = 0;

  record(valueUs: number): void {
    const index = valueUs <= 1 ? 0 : Math.min(this.counts.length - 1, Math.ceil(Math.log(valueUs) / LogHistogram.#base));
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.total++;
  }

  merge(other: LogHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = (this.counts[i] ?? 0) + (other.counts[i] ?? 0);
    this.total += other.total;
  }

  /** Upper edge of the bucket holding the p-th percentile, in µs. */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.exp(i * LogHistogram.#base);
    }
    return Number.NaN;
  }
}
