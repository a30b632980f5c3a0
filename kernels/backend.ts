/**
 * The backend interface: everything the core asks of a device.
 *
 * A backend owns tensor storage (host typed arrays, a WebAssembly arena, or
 * gpu.js textures) and runs kernels on it. The core never touches storage
 * directly: it allocates, runs kernels and, only when a caller asks for values,
 * reads them back. Index data (embedding ids, bag offsets) is input data that
 * already lives on the host, so kernels take it as plain `Int32Array`s and a
 * device backend uploads it as it needs.
 *
 * Shapes are passed explicitly to each kernel; storage itself is a flat,
 * contiguous, row-major buffer of `size` elements.
 */

/** Element type of a tensor. `float64` is for the reference backend and gradient checks. */
export type DType = 'float32' | 'float64';

/** A typed array holding elements of a {@link DType}. */
export type TypedArrayFor<D extends DType> = D extends 'float64' ? Float64Array : Float32Array;

/** Host array of either float dtype. */
export type FloatArray = Float32Array | Float64Array;

/** Opaque, backend-owned flat buffer. Only the backend that made it may use it. */
export interface Storage {
  /** Number of elements. */
  readonly size: number;
  /** Element type. */
  readonly dtype: DType;
}

/** Elementwise unary kernels. `step` is 1 where x > 0, else 0 (the relu derivative). */
export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'log1p'
  | 'sqrt'
  | 'square'
  | 'abs'
  | 'sigmoid'
  | 'logSigmoid'
  | 'tanh'
  | 'relu'
  | 'step'
  | 'sign';

/** Elementwise binary kernels with numpy broadcasting. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum' | 'pow';

/** Pooling of an embedding bag. `sqrtn` divides the sum by sqrt(sum of squared weights). */
export type BagMode = 'sum' | 'mean' | 'sqrtn';

/** Geometry of a (batched) matrix product `out[b] = op(A[b]) · op(B[b])`. */
export interface MatmulGeometry {
  /** Number of matrix pairs; 1 for a plain 2-D product. */
  batch: number;
  /** Rows of op(A) and of out. */
  m: number;
  /** Columns of op(B) and of out. */
  n: number;
  /** Columns of op(A) = rows of op(B). */
  k: number;
  /** A is stored as [k, m] and used transposed. */
  transA: boolean;
  /** B is stored as [n, k] and used transposed. */
  transB: boolean;
  /** When false, A is one matrix shared by every batch entry (broadcast). */
  batchA: boolean;
  /** When false, B is one matrix shared by every batch entry (broadcast). */
  batchB: boolean;
}

/** Adam hyper-parameters for one update. `step` is the 1-based global step used for bias correction. */
export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/**
 * A compute backend. `reference`, `gpu` and `wasm` implement it; the core's ops
 * are written once against it.
 *
 * Output storages are always supplied by the caller and never alias an input
 * unless a kernel says so (elementwise kernels accept `out === a`).
 */
export interface Backend extends BackendKernels {
  /** Short name, e.g. `reference`, `gpu:cpu`, `wasm`. */
  readonly name: string;
  /** Whether tensors of this dtype can live here. */
  supportsDtype(dtype: DType): boolean;

  // ---- storage ----
  /** A new zero-filled buffer. */
  alloc(size: number, dtype: DType): Storage;
  /** A new buffer holding a copy of `data`. */
  fromArray(data: FloatArray, dtype: DType): Storage;
  /** Copy the buffer to the host. The only way values leave a device. */
  read(storage: Storage): FloatArray;
  /** Overwrite the buffer from the host. */
  write(storage: Storage, data: ArrayLike<number>): void;
  /** Release the buffer; it must not be used afterwards. */
  free(storage: Storage): void;
}

/**
 * The kernels of a {@link Backend}: every method that computes on storages (the rest of the
 * interface manages storage). Backends write them as one table (see `kernel-table.ts`).
 */
export interface BackendKernels {
  // ---- elementwise ----
  /** Set every element of `out` to `value`. */
  fill(out: Storage, value: number): void;
  /** out = src (same size). */
  copy(src: Storage, out: Storage): void;
  /** out = op(x) elementwise; `out` may be `x`. */
  unary(op: UnaryOp, x: Storage, out: Storage): void;
  /** out = alpha * x + beta. */
  affine(x: Storage, alpha: number, beta: number, out: Storage): void;
  /** out = a * x + b * y (same sizes). */
  axpby(a: number, x: Storage, b: number, y: Storage, out: Storage): void;
  /** Broadcasting binary op; shapes are right-aligned as in numpy. */
  binary(
    op: BinaryOp,
    a: Storage,
    aShape: readonly number[],
    b: Storage,
    bShape: readonly number[],
    out: Storage,
    outShape: readonly number[],
  ): void;

  // ---- reductions and layout ----
  /** Sum over `axes`; out has the shape of x with those axes set to 1. */
  reduceSum(x: Storage, shape: readonly number[], axes: readonly number[], out: Storage): void;
  /** Max over the last axis of a [rows, cols] view. */
  reduceMaxLast(x: Storage, rows: number, cols: number, out: Storage): void;
  /** out = x permuted by `perm` (out shape[i] = shape[perm[i]]). */
  permute(x: Storage, shape: readonly number[], perm: readonly number[], out: Storage): void;
  /**
   * Copy a block between two arrays of the same rank: out[outBegin + i] = src[srcBegin + i]
   * for every multi-index i < `extent`; the rest of `out` is left as it is.
   * Covers slice, concat and their gradients.
   */
  copyBlock(
    src: Storage,
    srcShape: readonly number[],
    srcBegin: readonly number[],
    out: Storage,
    outShape: readonly number[],
    outBegin: readonly number[],
    extent: readonly number[],
  ): void;

  // ---- linear algebra ----
  /** out[b] = op(A[b]) · op(B[b]) for the given geometry (see {@link MatmulGeometry}). */
  matmul(a: Storage, b: Storage, out: Storage, geometry: MatmulGeometry): void;

  // ---- rows and embeddings ----
  /** out[i, :] = x[ids[i], :] for a [*, dim] matrix. */
  gatherRows(x: Storage, dim: number, ids: Int32Array, out: Storage): void;
  /**
   * Pooled lookup: out[b, :] = pool over j in [offsets[b], offsets[b+1]) of weights[j] * table[ids[j], :].
   * `offsets` has batch + 1 entries. An empty bag pools to zeros.
   */
  embeddingBag(
    table: Storage,
    dim: number,
    ids: Int32Array,
    offsets: Int32Array,
    weights: Float32Array | null,
    mode: BagMode,
    out: Storage,
  ): void;
  /**
   * Segment sum of rows, the gather-style half of a sparse gradient:
   * out[u, :] = sum over c in [segments[u], segments[u+1]) of scales[c] * src[srcRows[c], :].
   * `scales` null means all ones.
   */
  segmentSumRows(
    src: Storage,
    dim: number,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    out: Storage,
  ): void;
  /** out[rows[i], :] += values[i, :] for distinct `rows`. */
  scatterAddRows(values: Storage, dim: number, rows: Int32Array, out: Storage): void;

  // ---- fused nn kernels ----
  /** PReLU with one slope per channel (last axis of a [rows, channels] view). */
  prelu(x: Storage, slope: Storage, channels: number, out: Storage): void;
  /** Gradients of PReLU: dx and the per-channel slope gradient (summed over rows). */
  preluBackward(
    x: Storage,
    slope: Storage,
    gradOut: Storage,
    channels: number,
    gradX: Storage,
    gradSlope: Storage,
  ): void;
  /**
   * A linear layer and PReLU in one pass: pre = x·Wᵀ + bias for x viewed as [rows, k] and W stored
   * [channels, k] (PyTorch's Linear weight), then out = prelu(pre, slope). Both are written: the
   * next layer reads `out`, the backward reads `pre`. Each output's dot product is summed as
   * {@link BackendKernels.matmul} sums it, so the pair equals matmul, bias add and prelu.
   * `bias` holds `biasRows` rows of `channels`: row g is added to the g-th run of rows / biasRows
   * consecutive rows (1: one bias for every row; more: a term per group, such as DIN's per-example
   * part of its activation unit's first layer over that example's sequence positions).
   */
  linearPrelu(
    x: Storage,
    weight: Storage,
    bias: Storage,
    slope: Storage,
    rows: number,
    channels: number,
    k: number,
    pre: Storage,
    out: Storage,
    biasRows: number,
  ): void;
  /**
   * The backward of {@link BackendKernels.linearPrelu}'s epilogue in one pass over [rows, channels]:
   * gradPre = gradOut where pre > 0, else slope·gradOut; gradSlope[c] = Σ over rows of pre·gradOut
   * where pre ≤ 0; gradBias[g, c] = Σ over the rows of bias row g (see `biasRows` of linearPrelu)
   * of gradPre. The input and weight gradients are then two matmuls over gradPre.
   */
  linearPreluBackward(
    pre: Storage,
    slope: Storage,
    gradOut: Storage,
    channels: number,
    gradPre: Storage,
    gradSlope: Storage,
    gradBias: Storage,
    biasRows: number,
  ): void;
  /** Softmax over the last axis; positions with mask 0 get probability 0 (all-masked rows are all zero). */
  softmaxLast(x: Storage, mask: Storage | null, rows: number, cols: number, out: Storage): void;
  /** Elementwise BCE with logits: max(x,0) - x*y + log1p(exp(-|x|)). */
  bceWithLogits(logits: Storage, labels: Storage, out: Storage): void;
  /** d/dlogits of the BCE above times gradOut: (sigmoid(x) - y) * g. */
  bceWithLogitsBackward(logits: Storage, labels: Storage, gradOut: Storage, out: Storage): void;
  /** Elementwise BCE(sigmoid(a) * sigmoid(b), y) computed in log space. */
  productBce(a: Storage, b: Storage, labels: Storage, out: Storage): void;
  /** Gradients of {@link Backend.productBce} with respect to a and b, times gradOut. */
  productBceBackward(a: Storage, b: Storage, labels: Storage, gradOut: Storage, gradA: Storage, gradB: Storage): void;

  // ---- optimizers ----
  /** Dense Adam (PyTorch semantics, L2 weight decay added to the gradient), in place. */
  adam(param: Storage, grad: Storage, m: Storage, v: Storage, hyper: AdamHyper): void;
  /** Lazy Adam on the listed distinct rows only (PyTorch SparseAdam); gradRows is [rows.length, dim]. */
  sparseAdam(
    param: Storage,
    m: Storage,
    v: Storage,
    dim: number,
    rows: Int32Array,
    gradRows: Storage,
    hyper: AdamHyper,
  ): void;
  /**
   * {@link BackendKernels.sparseAdam} whose gradient rows are a segment sum, as
   * {@link BackendKernels.segmentSumRows} computes them (the gradient of rows[u] is the sum over
   * c in [segments[u], segments[u+1]) of scales[c] * src[srcRows[c], :]), without storing them:
   * equal, bit for bit, to segmentSumRows into a [rows.length, dim] buffer and then sparseAdam.
   */
  sparseAdamSegments(
    param: Storage,
    m: Storage,
    v: Storage,
    dim: number,
    rows: Int32Array,
    src: Storage,
    segments: Int32Array,
    srcRows: Int32Array,
    scales: Float32Array | null,
    hyper: AdamHyper,
  ): void;
}

/**
 * Windowed host access to a buffer, offered by backends whose storage lives in host memory
 * (reference, wasm), so that a large buffer can be streamed (e.g. to and from a checkpoint)
 * without a second full copy. A device backend does not offer it.
 */
export interface RangeAccess {
  /** Copy elements [start, start + out.length) into `out`. */
  readRange(storage: Storage, start: number, out: FloatArray): void;
  /** Overwrite elements [start, start + data.length) from the host. */
  writeRange(storage: Storage, start: number, data: FloatArray): void;
}

/** Whether `backend` offers {@link RangeAccess}. */
export function hasRangeAccess(backend: Backend): backend is Backend & RangeAccess {
  const b = backend as Partial<RangeAccess>;
  return typeof b.readRange === 'function' && typeof b.writeRange === 'function';
}

/** The {@link Backend} members that manage storage rather than run a kernel. */
export const STORAGE_METHODS = ['alloc', 'fromArray', 'read', 'write', 'free'] as const satisfies readonly Exclude<
  keyof Backend,
  KernelMethod | 'name' | 'supportsDtype'
>[];

/** Names of the {@link Backend} storage operations. */
export type StorageMethod = (typeof STORAGE_METHODS)[number];

/** Names of the {@link Backend} kernels. */
export type KernelMethod = keyof BackendKernels;

/** Names of every {@link Backend} method but `supportsDtype`: the storage operations and the kernels. */
export type BackendMethod = StorageMethod | KernelMethod;

/**
 * A backend whose kernels complete later than their calls return (webgpu): its `read`
 * throws, and values come back through `readAsync`, once the work queued before it has run.
 * Callers use `Tensor.data()`, which picks `readAsync` where it exists and `read` elsewhere.
 */
export interface AsyncReadBackend extends Backend {
  /** Copy the buffer to the host after every call queued before this one has run. */
  readAsync(storage: Storage): Promise<FloatArray>;
}

/** Whether `backend` reads asynchronously (see {@link AsyncReadBackend}). */
export function readsAsync(backend: Backend): backend is AsyncReadBackend {
  return typeof (backend as Partial<AsyncReadBackend>).readAsync === 'function';
}
