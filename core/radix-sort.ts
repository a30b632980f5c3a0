/** Grouping equal row ids on the host with a linear-time radix sort (sparse gradients, embedding bags). */
// Reused by every call: a fresh 256 KiB array per training step would cost page faults.
const radixCounts = new Int32Array(1 << 16);
// The sorts' temporaries, reused likewise (grown to the largest batch): what a call returns is
// allocated fresh, since callers keep it, but these never leave it. Fresh ones per step cost page
// faults and external-memory GCs: the allocator hands freed backing stores back and re-faults them.
const pooled: Int32Array[] = [new Int32Array(0), new Int32Array(0), new Int32Array(0)];
/** Pooled temporary number `which` (0–2), at least n long; its contents are garbage. */
function temporary(which: number, n: number): Int32Array {
  if (pooled[which].length < n) pooled[which] = new Int32Array(Math.max(n, 2 * pooled[which].length));
  return pooled[which].subarray(0, n);
}

/**
 * Group equal indices: `unique` in ascending order, and for each unique value u the
 * positions order[segments[u] .. segments[u+1]) where it occurs, ascending. Host-side:
 * indices are input data. A stable LSD radix sort keeps this linear in the batch, whatever
 * the vocabulary size (one pass per digit of the largest id).
 */
export function groupIndices(indices: Int32Array): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = indices.length;
  const posBits = 32 - Math.clz32(Math.max(n - 1, 0));
  // Packed keys, id above position, built while the largest id is found (kept only if they fit).
  const keys = temporary(0, n);
  let max = 0;
  for (let i = 0; i < n; i++) {
    const id = indices[i];
    if (id > max) max = id;
    keys[i] = (id << posBits) | i;
  }
  const idBits = 32 - Math.clz32(max);
  return idBits + posBits <= 32 ? groupPacked(keys, idBits, posBits) : groupByPositions(indices, max);
}

/** Digit counts to each digit's first slot in the sorted order (an exclusive prefix sum, in place). */
function startsOfDigits(counts: Int32Array): void {
  let total = 0;
  for (let d = 0; d < counts.length; d++) {
    const c = counts[d];
    counts[d] = total;
    total += c;
  }
}

/**
 * The digit width for sorting `bits` bits of n keys: each pass costs about 2n (count, scatter)
 * plus two sweeps of a 2^digit histogram, so the fewest passes whose histograms stay small.
 */
function digitWidth(n: number, bits: number): number {
  let best = 16;
  let bestCost = Infinity;
  for (let passes = Math.ceil(bits / 16); passes <= Math.max(1, bits); passes++) {
    const digit = Math.ceil(bits / passes);
    const cost = passes * (2 * n + 2 * (1 << digit));
    if (cost < bestCost) [best, bestCost] = [digit, cost];
    if (digit <= 4) break;
  }
  return best;
}

/**
 * Where id and position fit in one 32-bit key (id above, position below): the sort moves keys
 * alone, with no gather through the ids, and the few passes the id's bits need.
 */
function groupPacked(
  packed: Int32Array,
  idBits: number,
  posBits: number,
): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = packed.length;
  let keys: Int32Array = packed;
  let scratch: Int32Array = temporary(1, n);
  if (idBits > 0) {
    const digit = digitWidth(n, idBits);
    const mask = (1 << digit) - 1;
    const counts = radixCounts.subarray(0, 1 << digit);
    for (let shift = posBits; shift < posBits + idBits; shift += digit) {
      counts.fill(0);
      for (let i = 0; i < n; i++) counts[(keys[i] >>> shift) & mask]++;
      startsOfDigits(counts);
      for (let i = 0; i < n; i++) {
        const k = keys[i];
        scratch[counts[(k >>> shift) & mask]++] = k;
      }
      [keys, scratch] = [scratch, keys];
    }
  }
  // keys now hold each position under its id, ids ascending and positions ascending within one.
  // The unique ids and segment starts go to the front of two n-long buffers, then are cut to length.
  const posMask = posBits === 32 ? -1 : (1 << posBits) - 1;
  const order = new Int32Array(n);
  const starts = temporary(2, n + 1);
  let distinct = 0;
  let previous = -1;
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    const id = k >>> posBits;
    order[i] = k & posMask;
    if (id !== previous) {
      keys[distinct] = id;
      starts[distinct++] = i;
      previous = id;
    }
  }
  starts[distinct] = n;
  return { unique: keys.slice(0, distinct), segments: starts.slice(0, distinct + 1), order };
}

/** The general case: a stable sort of positions by their ids. */
function groupByPositions(
  indices: Int32Array,
  max: number,
): { unique: Int32Array; segments: Int32Array; order: Int32Array } {
  const n = indices.length;
  const result = new Int32Array(n);
  let order: Int32Array = result;
  let scratch: Int32Array = temporary(1, n);
  for (let i = 0; i < n; i++) order[i] = i;
  // Only as many passes as the largest id needs, of the width the cost model picks (ids of 20 bits
  // in a batch of 10240: two passes of 10 bits rather than three of 8).
  const bits = 32 - Math.clz32(max);
  const digit = digitWidth(n, bits);
  const mask = (1 << digit) - 1;
  const counts = radixCounts.subarray(0, 1 << digit);
  for (let shift = 0; shift < bits; shift += digit) {
    counts.fill(0);
    // Indices are non-negative row ids; `>>> shift & mask` buckets them by one digit.
    for (let i = 0; i < n; i++) counts[(indices[i] >>> shift) & mask]++;
    startsOfDigits(counts);
    for (let i = 0; i < n; i++) {
      const pos = order[i];
      scratch[counts[(indices[pos] >>> shift) & mask]++] = pos;
    }
    [order, scratch] = [scratch, order];
  }
  if (order !== result) result.set(order);
  order = result;
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
