/** Nearest-rank percentile of the first `count` values (sorts a copy). */
export function percentile(values: ArrayLike<number>, p: number, count = values.length): number {
  if (count <= 0) return Number.NaN;
  const sorted = Float64Array.from({ length: count }, (_, i) => values[i] ?? Number.NaN).sort();
  const rank = Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  return percentile(finite, 50);
}

/** (max − min) / median: the run-to-run spread quoted next to every median. */
export function spread(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length < 2) return Number.NaN;
  return (Math.max(...finite) - Math.min(...finite)) / median(finite);
}
