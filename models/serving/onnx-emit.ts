/**
 * ONNX emitters of the op registry: one function per registered op that writes the op as ONNX
 * nodes (opset 18), given the names of its inputs and its traced attributes. A new op of the core
 * (or a user's own) exports once it has an emitter here; the test suite checks that every
 * registered op has one.
 */
import { ONNX_BOOL, ONNX_FLOAT, ONNX_INT64, type OnnxAttr } from './onnx-proto.js';

/** A dimension that follows the batch: `coef` times the product of the named symbols (`batch`, `<field>.len`). */
export interface SymDim {
  coef: number;
  symbols: readonly string[];
}

/** A traced dimension: fixed, or following the batch. */
export type Dim = number | SymDim;

/** What a host array in an op's attributes is, relative to the graph inputs. */
export interface SourceTag {
  field: string;
  part: 'ids' | 'offsets' | 'values' | 'sequenceIds' | 'sequenceMask' | 'sequenceScale';
}

/** An attribute value after tracing: numbers may follow the batch, host arrays are sources or constants. */
export type TracedAttr =
  | number
  | SymDim
  | string
  | boolean
  | null
  | undefined
  | { source: SourceTag }
  | { array: Float64Array; intLike: boolean }
  | { tensor: string }
  | TracedAttr[]
  | { [key: string]: TracedAttr };

/** What an emitter can do: read its inputs and attributes, and add nodes and constants. */
export interface EmitContext {
  /** Registry name of the op being emitted. */
  readonly op: string;
  /** ONNX value names of the op's tensor inputs. */
  readonly inputs: readonly string[];
  /** Traced shapes of those inputs. */
  readonly inputShapes: readonly (readonly Dim[])[];
  /** Traced shape of the op's output. */
  readonly outputShape: readonly Dim[];
  /** The op's attributes, traced. */
  readonly attrs: TracedAttr;
  /** Add a node; returns the name of its (first) output. */
  node(opType: string, inputs: readonly string[], attrs?: Record<string, OnnxAttr>): string;
  /** A float32 constant (scalar when `dims` is omitted). */
  floatConst(values: ArrayLike<number>, dims?: readonly number[]): string;
  /** An int64 constant (1-D when `dims` is omitted). */
  intConst(values: ArrayLike<number>, dims?: readonly number[]): string;
  /** A 1-D int64 tensor holding `dims`, computed from the graph inputs where a dimension follows the batch. */
  shape(dims: readonly Dim[]): string;
  /** Per-field graph pieces of a bag field in the padded input form. */
  bag(field: string): BagValues;
  /** The graph input of a categorical or numeric field. */
  fieldInput(field: string): string;
}

/** A bag field's padded pieces, each [batch, maxLen]. */
export interface BagValues {
  /** int64 ids with padding set to 0 (a valid row, weighted 0). */
  ids: string;
  /** float32, 1 for a real position. */
  mask: string;
  /** float32 per-position weight: the values where the field is weighted (0 at padding), else the mask. */
  scale: string;
}

/** Writes one registered op as ONNX nodes; returns the name of the op's output. */
export type OnnxEmitter = (ctx: EmitContext) => string;

const emitters = new Map<string, OnnxEmitter>();

/** Make an op exportable (a second emitter for one op is an error unless `replace`). */
export function registerOnnxEmitter(op: string, emitter: OnnxEmitter, options: { replace?: boolean } = {}): void {
  if (emitters.has(op) && !options.replace) throw new Error(`registerOnnxEmitter: '${op}' already has an emitter`);
  emitters.set(op, emitter);
}

/** The emitter of an op, if it has one. */
export function onnxEmitter(op: string): OnnxEmitter | undefined {
  return emitters.get(op);
}

/** Ops that have an emitter. */
export function listOnnxEmitters(): string[] {
  return [...emitters.keys()];
}

// ---------------------------------------------------------------------------
// Helpers over traced attributes

function attrRecord(ctx: EmitContext): Record<string, TracedAttr> {
  const a = ctx.attrs;
  if (!a || typeof a !== 'object' || Array.isArray(a)) throw new Error(`${ctx.op}: expected attributes`);
  return a as Record<string, TracedAttr>;
}

function staticNumber(ctx: EmitContext, value: TracedAttr, what: string): number {
  if (typeof value !== 'number')
    throw new Error(`ONNX export of '${ctx.op}': ${what} must not depend on the batch, got ${JSON.stringify(value)}`);
  return value;
}

function staticInts(ctx: EmitContext, value: TracedAttr, what: string): number[] {
  if (!Array.isArray(value)) throw new Error(`ONNX export of '${ctx.op}': ${what} is not a list`);
  return value.map((v) => staticNumber(ctx, v, what));
}

function dims(ctx: EmitContext, value: TracedAttr, what: string): Dim[] {
  if (!Array.isArray(value)) throw new Error(`ONNX export of '${ctx.op}': ${what} is not a list`);
  return value.map((v) => {
    if (typeof v === 'number') return v;
    if (v && typeof v === 'object' && 'coef' in v) return v as SymDim;
    throw new Error(`ONNX export of '${ctx.op}': ${what} holds ${JSON.stringify(v)}`);
  });
}

function sourceOf(ctx: EmitContext, value: TracedAttr, what: string): SourceTag | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'object' && 'source' in value) return (value as { source: SourceTag }).source;
  throw new Error(
    `ONNX export of '${ctx.op}': ${what} is a host array computed outside the traced inputs; ` +
      'build it from the batch fields (or mark it with markTraced) so the graph can compute it',
  );
}

const ints = (value: readonly number[]): OnnxAttr => ({ kind: 'ints', value });
const int = (value: number): OnnxAttr => ({ kind: 'int', value });

// ---------------------------------------------------------------------------
// Elementwise

for (const [op, onnx] of [
  ['add', 'Add'],
  ['sub', 'Sub'],
  ['mul', 'Mul'],
  ['div', 'Div'],
  ['pow', 'Pow'],
  ['maximum', 'Max'],
  ['minimum', 'Min'],
] as const) {
  registerOnnxEmitter(op, (ctx) => ctx.node(onnx, ctx.inputs));
}

for (const [op, onnx] of [
  ['neg', 'Neg'],
  ['exp', 'Exp'],
  ['log', 'Log'],
  ['sqrt', 'Sqrt'],
  ['abs', 'Abs'],
  ['tanh', 'Tanh'],
  ['relu', 'Relu'],
  ['sign', 'Sign'],
] as const) {
  registerOnnxEmitter(op, (ctx) => ctx.node(onnx, ctx.inputs));
}

registerOnnxEmitter('log1p', (ctx) => ctx.node('Log', [ctx.node('Add', [ctx.inputs[0], ctx.floatConst([1])])]));
// 1 / (1 + e^−x) rather than ONNX Runtime's Sigmoid, whose fast approximation loses relative
// precision far in the tails (0.4% at p = 4e-6), which DIVISION's pCTCVR / pCTR magnifies.
registerOnnxEmitter('sigmoid', (ctx) =>
  ctx.node('Reciprocal', [ctx.node('Add', [ctx.floatConst([1]), ctx.node('Exp', [ctx.node('Neg', [ctx.inputs[0]])])])]),
);
registerOnnxEmitter('square', (ctx) => ctx.node('Mul', [ctx.inputs[0], ctx.inputs[0]]));
// log σ(x) = −softplus(−x), which stays finite for any x.
registerOnnxEmitter('logSigmoid', (ctx) => ctx.node('Neg', [ctx.node('Softplus', [ctx.node('Neg', [ctx.inputs[0]])])]));
registerOnnxEmitter('step', (ctx) =>
  ctx.node('Cast', [ctx.node('Greater', [ctx.inputs[0], ctx.floatConst([0])])], { to: int(ONNX_FLOAT) }),
);
registerOnnxEmitter('affine', (ctx) => {
  const a = attrRecord(ctx);
  const alpha = staticNumber(ctx, a.alpha, 'alpha');
  const beta = staticNumber(ctx, a.beta, 'beta');
  let out = ctx.inputs[0];
  if (alpha !== 1) out = ctx.node('Mul', [out, ctx.floatConst([alpha])]);
  if (beta !== 0 || out === ctx.inputs[0]) out = ctx.node('Add', [out, ctx.floatConst([beta])]);
  return out;
});

// ---------------------------------------------------------------------------
// Reductions and layout

registerOnnxEmitter('sum', (ctx) => {
  const a = attrRecord(ctx);
  const axes = staticInts(ctx, a.axes, 'axes');
  if (axes.length === 0) return ctx.node('Identity', ctx.inputs);
  return ctx.node('ReduceSum', [ctx.inputs[0], ctx.intConst(axes)], { keepdims: int(a.keepDims ? 1 : 0) });
});
registerOnnxEmitter('maxLast', (ctx) =>
  ctx.node('ReduceMax', [ctx.inputs[0], ctx.intConst([-1])], { keepdims: int(0) }),
);
registerOnnxEmitter('broadcastTo', (ctx) =>
  ctx.node('Expand', [ctx.inputs[0], ctx.shape(dims(ctx, attrRecord(ctx).shape, 'shape'))]),
);
registerOnnxEmitter('reshape', (ctx) =>
  ctx.node('Reshape', [ctx.inputs[0], ctx.shape(dims(ctx, attrRecord(ctx).shape, 'shape'))]),
);
registerOnnxEmitter('permute', (ctx) =>
  ctx.node('Transpose', ctx.inputs, { perm: ints(staticInts(ctx, attrRecord(ctx).perm, 'perm')) }),
);
registerOnnxEmitter('slice', (ctx) => {
  const a = attrRecord(ctx);
  const begin = dims(ctx, a.begin, 'begin');
  const size = dims(ctx, a.size, 'size');
  const starts = ctx.shape(begin);
  const ends = ctx.node('Add', [starts, ctx.shape(size)]);
  return ctx.node('Slice', [ctx.inputs[0], starts, ends, ctx.intConst(begin.map((_, i) => i))]);
});
registerOnnxEmitter('concat', (ctx) =>
  ctx.node('Concat', ctx.inputs, { axis: int(staticNumber(ctx, attrRecord(ctx).axis, 'axis')) }),
);

// ---------------------------------------------------------------------------
// Linear algebra and fused ops

registerOnnxEmitter('matmul', (ctx) => {
  const a = attrRecord(ctx);
  const swapLast = (name: string, rank: number): string => {
    const perm = [...Array(rank).keys()];
    [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
    return ctx.node('Transpose', [name], { perm: ints(perm) });
  };
  const [x, y] = ctx.inputs;
  const left = a.transA ? swapLast(x, ctx.inputShapes[0].length) : x;
  const right = a.transB ? swapLast(y, ctx.inputShapes[1].length) : y;
  return ctx.node('MatMul', [left, right]);
});
registerOnnxEmitter('prelu', (ctx) => ctx.node('PRelu', ctx.inputs));
// prelu(x·Wᵀ + b, slope): the three nodes of the unfused layer, which ONNX Runtime fuses itself.
// A per-run bias [groups, out] is added to the product viewed as [groups, rows / groups, out].
registerOnnxEmitter('linearPrelu', (ctx) => {
  const [x, weight, bias, slope] = ctx.inputs;
  const wt = ctx.node('Transpose', [weight], { perm: ints([1, 0]) });
  const product = ctx.node('MatMul', [x, wt]);
  const biasShape = ctx.inputShapes[2];
  if (biasShape.length === 1) return ctx.node('PRelu', [ctx.node('Add', [product, bias]), slope]);
  const runs = ctx.node('Reshape', [product, ctx.shape([biasShape[0], -1, biasShape[1]])]);
  const added = ctx.node('Add', [runs, ctx.node('Unsqueeze', [bias, ctx.intConst([1])])]);
  return ctx.node('PRelu', [ctx.node('Reshape', [added, ctx.shape(ctx.outputShape)]), slope]);
});
registerOnnxEmitter('softmax', (ctx) => {
  const mask = attrRecord(ctx).mask;
  if (mask === null || mask === undefined) return ctx.node('Softmax', ctx.inputs, { axis: int(-1) });
  if (typeof mask !== 'object' || !('tensor' in mask)) throw new Error('ONNX export of softmax: mask is not a tensor');
  const maskName = (mask as { tensor: string }).tensor;
  // Masked positions get the lowest float before the softmax and an exact 0 after it, so a row
  // masked entirely is all zeros, as the kernel makes it.
  const keep = ctx.node('Cast', [maskName], { to: int(ONNX_BOOL) });
  const filled = ctx.node('Where', [keep, ctx.inputs[0], ctx.floatConst([-3.4028234663852886e38])]);
  return ctx.node('Mul', [ctx.node('Softmax', [filled], { axis: int(-1) }), maskName]);
});
registerOnnxEmitter('bceWithLogits', (ctx) => {
  // max(x, 0) − x·y + log(1 + e^−|x|)
  const [x, y] = ctx.inputs;
  const linear = ctx.node('Sub', [ctx.node('Relu', [x]), ctx.node('Mul', [x, y])]);
  return ctx.node('Add', [linear, ctx.node('Softplus', [ctx.node('Neg', [ctx.node('Abs', [x])])])]);
});
registerOnnxEmitter('productBce', (ctx) => {
  // −y·(log σ(a) + log σ(b)) − (1 − y)·log(1 − σ(a)σ(b)), with
  // log(1 − σ(a)σ(b)) = logsumexp(0, a, b) − softplus(a) − softplus(b).
  const [a, b, y] = ctx.inputs;
  const softplus = (t: string): string => ctx.node('Softplus', [t]);
  const logSig = (t: string): string => ctx.node('Neg', [softplus(ctx.node('Neg', [t]))]);
  const zero = ctx.floatConst([0]);
  const m = ctx.node('Max', [zero, a, b]);
  const e = (t: string): string => ctx.node('Exp', [ctx.node('Sub', [t, m])]);
  const lse = ctx.node('Add', [m, ctx.node('Log', [ctx.node('Sum', [e(zero), e(a), e(b)])])]);
  const log1m = ctx.node('Sub', [ctx.node('Sub', [lse, softplus(a)]), softplus(b)]);
  const pos = ctx.node('Mul', [y, ctx.node('Add', [logSig(a), logSig(b)])]);
  const neg = ctx.node('Mul', [ctx.node('Sub', [ctx.floatConst([1]), y]), log1m]);
  return ctx.node('Neg', [ctx.node('Add', [pos, neg])]);
});

// ---------------------------------------------------------------------------
// Lookups: their ids are host arrays, which tracing maps to graph inputs

/** Rows `ids` of `table`: fixed ids as a constant, else a field's ids (or a sequence's padded ids). */
function emitGather(ctx: EmitContext, table: string, ids: TracedAttr): string {
  if (ids && typeof ids === 'object' && 'array' in ids) {
    // Fixed ids (the same in every trace) are a constant of the graph.
    return ctx.node('Gather', [table, ctx.intConst((ids as { array: Float64Array }).array)], { axis: int(0) });
  }
  const tag = sourceOf(ctx, ids, 'ids')!;
  if (tag.part === 'ids') return ctx.node('Gather', [table, ctx.fieldInput(tag.field)], { axis: int(0) });
  if (tag.part === 'sequenceIds') {
    const flat = ctx.node('Reshape', [ctx.bag(tag.field).ids, ctx.intConst([-1])]);
    return ctx.node('Gather', [table, flat], { axis: int(0) });
  }
  throw new Error(`ONNX export of ${ctx.op}: ids are the ${tag.part} of field '${tag.field}', not ids`);
}

/** One bag field's pooled rows of `table`, from the attributes `ids`, `offsets`, `weights` and `mode`. */
function emitBag(ctx: EmitContext, table: string, a: Record<string, TracedAttr>): string {
  const ids = sourceOf(ctx, a.ids, 'ids');
  const offsets = sourceOf(ctx, a.offsets, 'offsets');
  const weights = sourceOf(ctx, a.weights, 'weights');
  if (!ids || ids.part !== 'ids' || !offsets || offsets.part !== 'offsets' || offsets.field !== ids.field)
    throw new Error(`ONNX export of ${ctx.op}: ids and offsets must be one bag field's, as in the batch`);
  if (weights && (weights.part !== 'values' || weights.field !== ids.field))
    throw new Error(`ONNX export of ${ctx.op}: weights must be the values of field '${ids.field}'`);
  const bag = ctx.bag(ids.field);
  let w = weights ? bag.scale : bag.mask;
  const mode = a.mode;
  if (mode === 'mean' || mode === 'sqrtn') {
    // As the kernel: divide by Σw (mean) or √Σw² (sqrtn), and by nothing where that is 0.
    const basis = mode === 'mean' ? w : ctx.node('Mul', [w, w]);
    let total = ctx.node('ReduceSum', [basis, ctx.intConst([1])], { keepdims: int(1) });
    if (mode === 'sqrtn') total = ctx.node('Sqrt', [total]);
    const zero = ctx.floatConst([0]);
    const inv = ctx.node('Where', [ctx.node('Equal', [total, zero]), zero, ctx.node('Reciprocal', [total])]);
    w = ctx.node('Mul', [w, inv]);
  } else if (mode !== 'sum') throw new Error(`ONNX export of ${ctx.op}: unknown mode ${JSON.stringify(mode)}`);
  const rows = ctx.node('Gather', [table, bag.ids], { axis: int(0) });
  const weighted = ctx.node('Mul', [rows, ctx.node('Unsqueeze', [w, ctx.intConst([2])])]);
  return ctx.node('ReduceSum', [weighted, ctx.intConst([1])], { keepdims: int(0) });
}

registerOnnxEmitter('gatherRows', (ctx) => emitGather(ctx, ctx.inputs[0], attrRecord(ctx).ids));
registerOnnxEmitter('embeddingBag', (ctx) => emitBag(ctx, ctx.inputs[0], attrRecord(ctx)));
// Each lookup as its own op would be, side by side.
registerOnnxEmitter('lookupConcat', (ctx) => {
  const lookups = attrRecord(ctx).lookups;
  if (!Array.isArray(lookups)) throw new Error('ONNX export of lookupConcat: lookups is not a list');
  const parts = lookups.map((l) => {
    const a = l as Record<string, TracedAttr>;
    const table = ctx.inputs[staticNumber(ctx, a.table, 'table')];
    return a.offsets === null ? emitGather(ctx, table, a.ids) : emitBag(ctx, table, a);
  });
  return parts.length === 1 ? parts[0] : ctx.node('Concat', parts, { axis: int(1) });
});

export { ONNX_FLOAT, ONNX_INT64 };
