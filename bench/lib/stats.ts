/**
 * Small statistics over plain arrays of numbers: percentiles (linearly
 * interpolated), the median, the mean, and rounding to a number of decimals.
 *
 * @module
 */

/**
 * The `p`th percentile of `values` (0–100), linearly interpolated between
 * the two nearest ranks. NaN when `values` is empty.
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p / 100) * (sorted.length - 1);
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
}

/**
 * The median of `values`: the middle value, or the mean of the middle two
 * for an even count. NaN when `values` is empty.
 */
export function median(values: number[]): number {
  return percentile(values, 50);
}

/** The arithmetic mean of `values`. NaN when `values` is empty. */
export function mean(values: number[]): number {
  if (values.length === 0) return NaN;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Rounds `value` to `digits` decimals (half away from zero for positives). */
export function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
