/** Grouping equal row ids on the host with a linear-time radix sort (sparse gradients, embedding bags). */
// Reused by every call: a fresh 256 KiB array per training step would cost page faults.
const radixCounts = new Int32Array(1 << 16);

/**
 * Group equal indices: `unique` in ascending order, and for each unique value u the
 * positions order[segments[u] .. segments[u+1]) where it occurs, ascending. Host-side:
 * indices are input data. A stable LSD radix sort (two 16-bit passes) keeps this linear
 * in the batch, whatever the vocabulary size.
 */
export function groupIndices(indices: Int32Array): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = indices.length;
  let order = new Int32Array(n);
  let scratch = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const counts = radixCounts;
  for (const shift of [0, 16]) {
    counts.fill(0);
    // Indices are non-negative row ids; `>>> shift & 0xffff` buckets them by one 16-bit digit.
    for (let i = 0; i < n; i++) counts[(indices[i] >>> shift) & 0xffff]++;
    let total = 0;
    for (let d = 0; d < counts.length; d++) {
      const c = counts[d];
      counts[d] = total;
      total += c;
    }
    for (let i = 0; i < n; i++) {
      const pos = order[i];
      scratch[counts[(indices[pos] >>> shift) & 0xffff]++] = pos;
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
