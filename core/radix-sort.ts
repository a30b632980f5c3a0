/** Grouping equal row ids on the host with a linear-time radix sort (sparse gradients, embedding bags). */
// Reused by every call: a fresh 256 KiB array per training step would cost page faults.
const radixCounts = new Int32Array(1 << 16);

/**
 * Group equal indices: `unique` in ascending order, and for each unique value u the
 * positions order[segments[u] .. segments[u+1]) where it occurs, ascending. Host-side:
 * indices are input data. A stable LSD radix sort (8- or 16-bit digits) keeps this linear
 * in the batch, whatever the vocabulary size (one pass per digit of the largest id).
 */
export function groupIndices(indices: Int32Array): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = indices.length;
  let order = new Int32Array(n);
  let scratch = new Int32Array(n);
  let max = 0;
  for (let i = 0; i < n; i++) {
    order[i] = i;
    if (indices[i] > max) max = indices[i];
  }
  // Each pass costs n plus one histogram: 8-bit digits for small batches (a 16-bit histogram would
  // cost more than the batch), 16-bit ones for large; only as many passes as the largest id needs.
  const digit = n < 1 << 14 ? 8 : 16;
  const mask = (1 << digit) - 1;
  const counts = radixCounts.subarray(0, 1 << digit);
  for (let shift = 0; shift < 32 - Math.clz32(max); shift += digit) {
    counts.fill(0);
    // Indices are non-negative row ids; `>>> shift & mask` buckets them by one digit.
    for (let i = 0; i < n; i++) counts[(indices[i] >>> shift) & mask]++;
    let total = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d];
      counts[d] = total;
      total += c;
    }
    for (let i = 0; i < n; i++) {
      const pos = order[i];
      scratch[counts[(indices[pos] >>> shift) & mask]++] = pos;
    }
    [order, scratch] = [scratch, order];
  }
  let distinct = 0;
  for (let i = 0; i < n; i++) if (i === 0 || indices[order[i]] !== indices[order[i - 1]]) distinct++;
  const unique = new Int32Array(distinct);
  const segments = new Int32Array(distinct + 1);
  for (let i = 0, u = -1; i < n; i++) {
    if (i === 0 || indices[order[i]] !== indices[order[i - 1]]) {
      unique[++u] = indices[order[i]];
      segments[u] = i;
    }
  }
  segments[distinct] = n;
  return { unique, segments, order };
}
