/**
 * Switches for the kernel fusions the core uses, so that a benchmark or a test can compare each
 * with the unfused kernels it replaces. A fused path gives the same numbers as the unfused one;
 * a captured step keeps the choice it was recorded with.
 */

/** The fusions, each on (true) or off. */
export interface Fusions {
  /**
   * Lazy Adam on an embedding table's row-sparse gradient sums each row's contributions and
   * updates the row in one kernel (`sparseAdamSegments`), never writing the gradient rows.
   * Off (the default): `segmentSumRows` into a [rows, dim] buffer, then `sparseAdam`. Measured on
   * wasm, the fused kernel is faster while the tables fit in the caches (about 30% on 10,000-row
   * tables) but slower on larger ones (5 to 13% on 100,000 and 1,000,000 rows): its longer row
   * update leaves fewer rows' cache misses in flight than the plain Adam loop.
   */
  segmentSumAdam: boolean;
  /**
   * `nn.Sequential` runs a Linear (with a bias) followed by a PReLU as one `linearPrelu` op: a GEMM
   * whose epilogue adds the bias and applies PReLU to each tile, and a backward that forms the
   * pre-activation, bias and slope gradients in one pass. Off: matmul, add and prelu as three ops.
   * Parameters and their names are the same either way.
   */
  linearPrelu: boolean;
}

/** The defaults: a fusion is on where it measured faster on the reference workload. */
export const FUSION_DEFAULTS: Readonly<Fusions> = Object.freeze({ segmentSumAdam: false, linearPrelu: true });

const current: Fusions = { ...FUSION_DEFAULTS };

/** The fusions in effect. */
export function fusions(): Readonly<Fusions> {
  return current;
}

/** Turn fusions on or off (others keep their setting); returns the previous settings. Unknown names throw. */
export function setFusions(options: Partial<Fusions>): Fusions {
  const previous = { ...current };
  for (const [key, value] of Object.entries(options)) {
    if (!(key in FUSION_DEFAULTS))
      throw new Error(`setFusions: unknown fusion '${key}'; known: ${Object.keys(FUSION_DEFAULTS).join(', ')}`);
    if (typeof value !== 'boolean') throw new Error(`setFusions: '${key}' must be true or false, got ${String(value)}`);
    current[key as keyof Fusions] = value;
  }
  return previous;
}
