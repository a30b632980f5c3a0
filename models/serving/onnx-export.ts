/**
 * ONNX export by tracing: the model's eager forward runs a few times on small simulated batches
 * of different sizes while a tracer records every op; the traces are merged (a number that
 * changes with the batch becomes a symbolic dimension) and each op is written by its emitter
 * (see onnx-emit.ts). A user's own base model therefore exports with no extra code, as long as
 * its ops have emitters and the host arrays it builds come from the batch.
 */
import { createHash } from 'node:crypto';
import { isParameter } from '../../core/nn/module.js';
import { nn, noGrad, Rng, Tensor, tidy, withTracer, type OpDefinition, type Tracer } from '../../core/index.js';
import { BaseModel } from '../base/base-model.js';
import type { CvrPredictions } from '../esmm.js';
import type { Batch, FieldBatch, Schema } from '../schema.js';
import {
  onnxEmitter,
  ONNX_FLOAT,
  ONNX_INT64,
  type BagValues,
  type Dim,
  type EmitContext,
  type SourceTag,
  type SymDim,
  type TracedAttr,
} from './onnx-emit.js';
import {
  encodeOnnxModel,
  ONNX_BOOL,
  type OnnxAttr,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo,
} from './onnx-proto.js';

/** The ONNX opset the graph uses (ONNX Runtime 1.14 and later load it). */
export const ONNX_OPSET = 18;
/** The IR version that goes with opset 18. */
export const ONNX_IR_VERSION = 9;

/** A model that can be exported: any method of `createModel`, or a module of the same shape. */
export interface ExportableModel extends nn.Module {
  readonly schema: Schema;
  readonly method?: string;
  forward(batch: Batch): CvrPredictions;
}

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /** The saved vocabulary (any JSON value); its SHA-256 goes into the metadata, and the JSON itself under `vocabulary`. */
  vocabulary?: unknown;
  /** Commit of the code the model was trained with (metadata `training_commit`). */
  trainingCommit?: string;
  /** Extra metadata_props entries. */
  metadata?: Record<string, string>;
  /** Graph name (default `esmm-ts`). */
  graphName?: string;
}

const OPTION_KEYS = new Set(['vocabulary', 'trainingCommit', 'metadata', 'graphName']);

/** SHA-256 of a vocabulary's JSON, as the metadata holds it ('none' without one). */
export function vocabularyHash(vocabulary: unknown): string {
  return vocabulary === undefined ? 'none' : createHash('sha256').update(JSON.stringify(vocabulary)).digest('hex');
}

/** Name of the symbolic batch dimension. */
export const BATCH_DIM = 'batch';

/** Name of a bag field's padded-length dimension. */
export function bagLengthDim(field: string): string {
  return `${field}.len`;
}

// ---------------------------------------------------------------------------
// Tracing

type Ref =
  | { kind: 'node'; index: number }
  | { kind: 'param'; name: string }
  | { kind: 'source'; tag: SourceTag; shape: number[] }
  | { kind: 'const'; shape: number[]; values: Float64Array };

/** An attribute as recorded: like TracedAttr, with tensors as refs and numbers as they were. */
type RawAttr =
  | number
  | string
  | boolean
  | null
  | undefined
  | { source: SourceTag }
  | { array: Float64Array; intLike: boolean }
  | { ref: Ref }
  | RawAttr[]
  | { [key: string]: RawAttr };

interface TraceEvent {
  op: OpDefinition<unknown>;
  inputs: Ref[];
  attrs: RawAttr;
  shape: number[];
}

interface Trace {
  events: TraceEvent[];
  outputs: Record<string, Ref>;
  symbols: Record<string, number>;
}

class Recorder implements Tracer {
  readonly events: TraceEvent[] = [];
  private readonly produced = new Map<Tensor, number>();
  private readonly sources = new Map<Tensor, SourceTag>();
  private readonly marks = new Map<object, SourceTag>();

  constructor(
    private readonly params: Map<Tensor, string>,
    batch: Batch,
  ) {
    for (const [field, data] of Object.entries(batch.fields)) {
      if (data.kind === 'categorical') this.marks.set(data.ids, { field, part: 'ids' });
      else if (data.kind === 'numeric') this.marks.set(data.values, { field, part: 'values' });
      else {
        this.marks.set(data.ids, { field, part: 'ids' });
        this.marks.set(data.offsets, { field, part: 'offsets' });
        if (data.values) this.marks.set(data.values, { field, part: 'values' });
      }
    }
  }

  onApply(op: OpDefinition<unknown>, inputs: readonly Tensor[], attrs: unknown, output: Tensor): void {
    const event = { op, inputs: inputs.map((t) => this.ref(t)), attrs: this.attr(attrs), shape: [...output.shape] };
    this.produced.set(output, this.events.length);
    this.events.push(event);
  }

  onFromArray(values: ArrayLike<number>, output: Tensor): void {
    const tag = this.marks.get(values as object);
    if (tag) this.sources.set(output, tag);
  }

  onMark(array: object, tag: unknown): void {
    this.marks.set(array, tag as SourceTag);
  }

  ref(t: Tensor): Ref {
    const node = this.produced.get(t);
    if (node !== undefined) return { kind: 'node', index: node };
    const param = this.params.get(t);
    if (param !== undefined) return { kind: 'param', name: param };
    const tag = this.sources.get(t);
    if (tag) return { kind: 'source', tag, shape: [...t.shape] };
    if (isParameter(t))
      throw new Error(`ONNX export: a parameter of shape [${t.shape.join(', ')}] is not one of the model's own`);
    return { kind: 'const', shape: [...t.shape], values: Float64Array.from(t.toArray()) };
  }

  private attr(value: unknown): RawAttr {
    if (value === null || value === undefined) return value;
    if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
    if (value instanceof Tensor) return { ref: this.ref(value) };
    if (ArrayBuffer.isView(value)) {
      const tag = this.marks.get(value);
      if (tag) return { source: tag };
      const array = Float64Array.from(value as unknown as ArrayLike<number>);
      return { array, intLike: value instanceof Int32Array };
    }
    if (Array.isArray(value)) return value.map((v) => this.attr(v));
    if (typeof value === 'object') {
      const out: Record<string, RawAttr> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = this.attr(v);
      return out;
    }
    throw new Error(`ONNX export: cannot trace an attribute of type ${typeof value}`);
  }
}

/** A simulated batch of `size` rows with each bag field padded to exactly `lengths[field]` in row 0. */
function traceBatch(schema: Schema, size: number, lengths: Record<string, number>, rng: Rng): Batch {
  const fields: Record<string, FieldBatch> = {};
  for (const f of schema.fields) {
    if (f.kind === 'categorical') {
      fields[f.name] = { kind: 'categorical', ids: Int32Array.from({ length: size }, () => rng.int(f.vocabSize)) };
    } else if (f.kind === 'numeric') {
      fields[f.name] = {
        kind: 'numeric',
        values: Float32Array.from({ length: size * (f.dim ?? 1) }, () => rng.normal()),
      };
    } else {
      const max = lengths[f.name];
      const offsets = new Int32Array(size + 1);
      // Row 0 is full, row 1 empty, the rest anything in between.
      for (let r = 0; r < size; r++) offsets[r + 1] = offsets[r] + (r === 0 ? max : r === 1 ? 0 : rng.int(max + 1));
      const ids = Int32Array.from({ length: offsets[size] }, () => rng.int(f.vocabSize));
      const values = f.weighted ? Float32Array.from(ids, () => 0.5 + rng.uniform() * 2) : undefined;
      fields[f.name] = values ? { kind: 'bag', ids, offsets, values } : { kind: 'bag', ids, offsets };
    }
  }
  return { size, fields, click: new Float32Array(size), conversion: new Float32Array(size) };
}

function runTrace(
  model: ExportableModel,
  params: Map<Tensor, string>,
  symbols: Record<string, number>,
  seed: number,
): Trace {
  const lengths: Record<string, number> = {};
  for (const f of model.schema.fields) if (f.kind === 'bag') lengths[f.name] = symbols[bagLengthDim(f.name)];
  const batch = traceBatch(model.schema, symbols[BATCH_DIM], lengths, new Rng(seed));
  const recorder = new Recorder(params, batch);
  const outputs: Record<string, Ref> = {};
  tidy(() =>
    noGrad(() =>
      withTracer(recorder, () => {
        const out = model.forward(batch) as unknown as Record<string, unknown>;
        for (const [name, t] of Object.entries(out)) if (t instanceof Tensor) outputs[name] = recorder.ref(t);
      }),
    ),
  );
  for (const name of ['pctr', 'pcvr', 'pctcvr'])
    if (!outputs[name]) throw new Error(`ONNX export: the model's forward returns no '${name}' tensor`);
  return { events: recorder.events, outputs, symbols };
}

// ---------------------------------------------------------------------------
// Merging traces: what changes with the batch becomes symbolic

class Fitter {
  constructor(
    private readonly traces: Trace[],
    /** For each symbol, the trace that changes only it. */
    private readonly probe: Map<string, number>,
  ) {}

  /** One value seen in every trace → a number, or a dimension following the batch. */
  number(values: number[], where: string): Dim {
    if (values.every((v) => v === values[0])) return values[0];
    const base = this.traces[0].symbols;
    const symbols: string[] = [];
    let divisor = 1;
    for (const [sym, k] of this.probe) {
      const v = values[k];
      if (v === values[0]) continue;
      const alt = this.traces[k].symbols[sym];
      if (v * base[sym] !== values[0] * alt) throw this.fail(where, values);
      symbols.push(sym);
      divisor *= base[sym];
    }
    const coef = values[0] / divisor;
    if (!Number.isInteger(coef)) throw this.fail(where, values);
    const dim: SymDim = { coef, symbols };
    // Every trace, including the one changing all symbols at once, must agree with the fit.
    values.forEach((v, k) => {
      if (evalDim(dim, this.traces[k].symbols) !== v) throw this.fail(where, values);
    });
    return dim;
  }

  private fail(where: string, values: number[]): Error {
    return new Error(
      `ONNX export: ${where} takes the values ${values.join(', ')} over batches of ` +
        `${this.traces.map((t) => JSON.stringify(t.symbols)).join(', ')}, which is neither fixed nor a product of batch dimensions`,
    );
  }
}

function evalDim(d: Dim, symbols: Record<string, number>): number {
  return typeof d === 'number' ? d : d.symbols.reduce((n, s) => n * symbols[s], d.coef);
}

type MergedRef =
  | { kind: 'node'; index: number }
  | { kind: 'param'; name: string }
  | { kind: 'source'; tag: SourceTag; shape: Dim[] }
  | { kind: 'const'; shape: Dim[]; values: Float64Array };

/** A tensor inside an op's attributes (a softmax mask), until the graph names it. */
class RefAttr {
  constructor(readonly ref: MergedRef) {}
}

interface MergedEvent {
  op: string;
  inputs: MergedRef[];
  attrs: TracedAttr;
  shape: Dim[];
}

function sameTag(a: SourceTag, b: SourceTag): boolean {
  return a.field === b.field && a.part === b.part;
}

function mergeTraces(traces: Trace[], fitter: Fitter): { events: MergedEvent[]; outputs: Record<string, MergedRef> } {
  const [first] = traces;
  for (const t of traces) {
    if (t.events.length !== first.events.length || t.events.some((e, i) => e.op !== first.events[i].op)) {
      const at = t.events.findIndex((e, i) => e.op !== first.events[i]?.op);
      throw new Error(
        `ONNX export: the forward runs different ops on batches of different sizes (op #${at}: ` +
          `${first.events[at]?.op.name ?? 'none'} vs ${t.events[at]?.op.name ?? 'none'}); it cannot be traced into one graph`,
      );
    }
  }
  const shape = (shapes: number[][], where: string): Dim[] => {
    if (shapes.some((s) => s.length !== shapes[0].length)) throw new Error(`ONNX export: ${where} changes rank`);
    return shapes[0].map((_, d) =>
      fitter.number(
        shapes.map((s) => s[d]),
        `dimension ${d} of ${where}`,
      ),
    );
  };
  const ref = (refs: Ref[], where: string): MergedRef => {
    const r = refs[0];
    if (refs.some((x) => x.kind !== r.kind))
      throw new Error(`ONNX export: ${where} is not the same kind of value in every trace`);
    if (r.kind === 'node') {
      if (refs.some((x) => x.kind === 'node' && x.index !== r.index))
        throw new Error(`ONNX export: ${where} changes source`);
      return r;
    }
    if (r.kind === 'param') {
      if (refs.some((x) => x.kind === 'param' && x.name !== r.name))
        throw new Error(`ONNX export: ${where} changes source`);
      return r;
    }
    if (r.kind === 'source') {
      if (refs.some((x) => x.kind === 'source' && !sameTag(x.tag, r.tag)))
        throw new Error(`ONNX export: ${where} changes source`);
      return {
        kind: 'source',
        tag: r.tag,
        shape: shape(
          refs.map((x) => (x as typeof r).shape),
          where,
        ),
      };
    }
    const consts = refs as Extract<Ref, { kind: 'const' }>[];
    const dims = shape(
      consts.map((c) => c.shape),
      where,
    );
    const static_ = dims.every((d) => typeof d === 'number');
    if (static_) {
      if (consts.some((c) => c.values.some((v, i) => !Object.is(v, r.values[i]))))
        throw new Error(
          `ONNX export: ${where} is a constant whose values change with the batch; it must come from the batch fields`,
        );
      return { kind: 'const', shape: dims, values: r.values };
    }
    const v0 = r.values[0];
    if (consts.some((c) => c.values.some((v) => !Object.is(v, v0))))
      throw new Error(
        `ONNX export: ${where} is a batch-sized constant with varying values; it must come from the batch fields`,
      );
    return { kind: 'const', shape: dims, values: Float64Array.of(v0) };
  };
  const attr = (values: RawAttr[], where: string): TracedAttr => {
    const a = values[0];
    if (typeof a === 'number') return fitter.number(values as number[], where);
    if (a === null || a === undefined || typeof a === 'string' || typeof a === 'boolean') {
      if (values.some((v) => v !== a)) throw new Error(`ONNX export: ${where} changes with the batch`);
      return a;
    }
    if (Array.isArray(a)) {
      if (values.some((v) => !Array.isArray(v) || v.length !== a.length))
        throw new Error(`ONNX export: ${where} changes length`);
      return a.map((_, i) =>
        attr(
          values.map((v) => (v as RawAttr[])[i]),
          `${where}[${i}]`,
        ),
      );
    }
    if ('source' in a) {
      const tag = a.source as SourceTag;
      const same = (v: RawAttr): boolean =>
        !!v && typeof v === 'object' && 'source' in v && sameTag((v as { source: SourceTag }).source, tag);
      if (!values.every(same)) throw new Error(`ONNX export: ${where} is not the same batch array in every trace`);
      return { source: tag };
    }
    if ('array' in a && a.array instanceof Float64Array) {
      const first = a.array;
      for (const v of values) {
        const arr = (v as { array?: Float64Array }).array;
        if (!arr || arr.length !== first.length || arr.some((x, i) => x !== first[i]))
          throw new Error(
            `ONNX export: ${where} is a host array computed from the batch outside the traced inputs; ` +
              'build it from the batch fields (or mark it with markTraced) so the graph can compute it',
          );
      }
      return { array: first, intLike: a.intLike === true };
    }
    if ('ref' in a)
      return new RefAttr(
        ref(
          values.map((v) => (v as { ref: Ref }).ref),
          where,
        ),
      ) as unknown as TracedAttr;
    const out: Record<string, TracedAttr> = {};
    for (const k of Object.keys(a))
      out[k] = attr(
        values.map((v) => (v as Record<string, RawAttr>)[k]),
        `${where}.${k}`,
      );
    return out;
  };
  const events = first.events.map((e, i): MergedEvent => {
    const where = `op #${i} (${e.op.name})`;
    return {
      op: e.op.name,
      inputs: e.inputs.map((_, j) =>
        ref(
          traces.map((t) => t.events[i].inputs[j]),
          `input ${j} of ${where}`,
        ),
      ),
      attrs: attr(
        traces.map((t) => t.events[i].attrs),
        `attribute of ${where}`,
      ),
      shape: shape(
        traces.map((t) => t.events[i].shape),
        `the output of ${where}`,
      ),
    };
  });
  const outputs: Record<string, MergedRef> = {};
  for (const name of Object.keys(first.outputs))
    outputs[name] = ref(
      traces.map((t) => t.outputs[name]),
      `output '${name}'`,
    );
  return { events, outputs };
}

// ---------------------------------------------------------------------------
// Graph building

class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  private counter = 0;
  private readonly memo = new Map<string, string>();

  constructor(private readonly schema: Schema) {
    for (const f of schema.fields) {
      if (f.kind === 'categorical') this.inputs.push({ name: f.name, type: ONNX_INT64, shape: [BATCH_DIM] });
      else if (f.kind === 'numeric')
        this.inputs.push({ name: f.name, type: ONNX_FLOAT, shape: [BATCH_DIM, f.dim ?? 1] });
      else {
        const len = bagLengthDim(f.name);
        this.inputs.push({ name: f.name, type: ONNX_INT64, shape: [BATCH_DIM, len] });
        this.inputs.push({ name: `${f.name}_lengths`, type: ONNX_INT64, shape: [BATCH_DIM] });
        if (f.weighted) this.inputs.push({ name: `${f.name}_values`, type: ONNX_FLOAT, shape: [BATCH_DIM, len] });
      }
    }
  }

  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  node(opType: string, inputs: readonly string[], attrs?: Record<string, OnnxAttr>, output?: string): string {
    const out = output ?? this.fresh(opType.toLowerCase());
    this.nodes.push({ opType, inputs, outputs: [out], name: `${opType}_${this.nodes.length}`, attrs });
    return out;
  }

  once(key: string, make: () => string): string {
    let name = this.memo.get(key);
    if (name === undefined) {
      name = make();
      this.memo.set(key, name);
    }
    return name;
  }

  initializer(
    name: string,
    type: typeof ONNX_FLOAT | typeof ONNX_INT64,
    dims: readonly number[],
    values: ArrayLike<number>,
  ): string {
    const data =
      type === ONNX_FLOAT ? Float32Array.from(values) : BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
    this.initializers.push({ name, type, dims: [...dims], values: data });
    return name;
  }

  floatConst(values: ArrayLike<number>, dims: readonly number[] = []): string {
    const key = `f:${dims.join(',')}:${Array.from(values).join(',')}`;
    return values.length <= 16
      ? this.once(key, () => this.initializer(this.fresh('const'), ONNX_FLOAT, dims, values))
      : this.initializer(this.fresh('const'), ONNX_FLOAT, dims, values);
  }

  intConst(values: ArrayLike<number>, dims: readonly number[] = [values.length]): string {
    const key = `i:${dims.join(',')}:${Array.from(values).join(',')}`;
    return values.length <= 16
      ? this.once(key, () => this.initializer(this.fresh('const'), ONNX_INT64, dims, values))
      : this.initializer(this.fresh('const'), ONNX_INT64, dims, values);
  }

  /** A [1] int64 tensor holding a symbol's current value, read from the input that carries it. */
  symbol(sym: string): string {
    return this.once(`sym:${sym}`, () => {
      if (sym === BATCH_DIM)
        return this.node('Shape', [this.inputs[0].name], {
          start: { kind: 'int', value: 0 },
          end: { kind: 'int', value: 1 },
        });
      const field = this.schema.fields.find((f) => f.kind === 'bag' && bagLengthDim(f.name) === sym);
      if (!field) throw new Error(`ONNX export: unknown dimension '${sym}'`);
      return this.node('Shape', [field.name], { start: { kind: 'int', value: 1 }, end: { kind: 'int', value: 2 } });
    });
  }

  shape(dims: readonly Dim[]): string {
    if (dims.every((d) => typeof d === 'number')) return this.intConst(dims as number[]);
    const parts = dims.map((d) => {
      if (typeof d === 'number') return this.intConst([d]);
      let t = d.coef === 1 ? null : this.intConst([d.coef]);
      for (const s of d.symbols) t = t ? this.node('Mul', [t, this.symbol(s)]) : this.symbol(s);
      return t ?? this.intConst([d.coef]);
    });
    return parts.length === 1 ? parts[0] : this.node('Concat', parts, { axis: { kind: 'int', value: 0 } });
  }

  fieldInput(name: string): string {
    const f = this.schema.fields.find((x) => x.name === name);
    if (!f || f.kind === 'bag') throw new Error(`ONNX export: '${name}' is not a categorical or numeric field`);
    return f.name;
  }

  bag(name: string): BagValues {
    const f = this.schema.fields.find((x) => x.name === name);
    if (!f || f.kind !== 'bag') throw new Error(`ONNX export: '${name}' is not a bag field`);
    const keep = this.once(`keep:${name}`, () => {
      const len = this.node('Squeeze', [this.symbol(bagLengthDim(name))]);
      const positions = this.node('Range', [this.intConst([0], []), len, this.intConst([1], [])]);
      const lengths = this.node('Unsqueeze', [`${name}_lengths`, this.intConst([1])]);
      return this.node('Less', [positions, lengths]);
    });
    const mask = this.once(`mask:${name}`, () => this.node('Cast', [keep], { to: { kind: 'int', value: ONNX_FLOAT } }));
    const ids = this.once(`ids:${name}`, () => this.node('Where', [keep, name, this.intConst([0], [])]));
    const scale = f.weighted ? this.once(`scale:${name}`, () => this.node('Mul', [`${name}_values`, mask])) : mask;
    return { ids, mask, scale };
  }
}

function modelKinds(model: nn.Module): string[] {
  const kinds = new Set<string>();
  const walk = (m: nn.Module): void => {
    if (m instanceof BaseModel) kinds.add(m.kind);
    for (const [, child] of m.namedChildren()) walk(child);
  };
  walk(model);
  return [...kinds];
}

/**
 * Export a model to the bytes of an .onnx file (opset 18, IR version 9).
 *
 * Inputs, per schema field: a categorical field is int64 `[batch]` ids; a bag field is
 * int64 `[batch, maxLen]` ids padded on the right (`<field>`), int64 `[batch]` lengths
 * (`<field>_lengths`) and, when weighted, float32 `[batch, maxLen]` values (`<field>_values`);
 * positions at or past a row's length are ignored, whatever they hold. A numeric field is float32
 * `[batch, dim]`. Outputs: `pctr`, `pcvr`, `pctcvr` (float32 `[batch]`) and, for each of them that
 * is a sigmoid, its logit (`ctr_logit`, `cvr_logit` or `ctcvr_logit`). Weights are initializers;
 * metadata_props carry the schema, method, base model, vocabulary hash and training commit.
 */
export function exportOnnx(model: ExportableModel, options: ExportOnnxOptions = {}): Uint8Array {
  for (const key of Object.keys(options))
    if (!OPTION_KEYS.has(key))
      throw new Error(`exportOnnx: unknown option '${key}'; known: ${[...OPTION_KEYS].join(', ')}`);
  const schema = model.schema;
  if (schema.fields.length === 0) throw new Error('exportOnnx: the schema has no fields');
  const params = new Map<Tensor, string>(model.namedParameters().map(([name, t]) => [t, name]));
  const bags = schema.fields.filter((f) => f.kind === 'bag').map((f) => bagLengthDim(f.name));
  const symbols = [BATCH_DIM, ...bags];
  // Distinct primes keep products of dimensions apart; each probe trace changes one symbol.
  const primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97];
  const base: Record<string, number> = {};
  const alt: Record<string, number> = {};
  symbols.forEach((s, i) => {
    base[s] = primes[2 * i + (i === 0 ? 2 : 0)] ?? 2 * i + 101;
    alt[s] = primes[2 * i + 1 + (i === 0 ? 2 : 0)] ?? 2 * i + 102;
  });
  const wasTraining = model.training;
  model.eval();
  const traces: Trace[] = [];
  const probe = new Map<string, number>();
  try {
    traces.push(runTrace(model, params, base, 1));
    for (const s of symbols) {
      probe.set(s, traces.length);
      traces.push(runTrace(model, params, { ...base, [s]: alt[s] }, traces.length + 1));
    }
    traces.push(runTrace(model, params, alt, traces.length + 1));
  } finally {
    model.train(wasTraining);
  }
  const { events, outputs } = mergeTraces(traces, new Fitter(traces, probe));

  const g = new GraphBuilder(schema);
  const names: string[] = [];
  const usedParams = new Map<string, Tensor>(model.namedParameters().map(([n, t]) => [n, t]));
  const resolve = (r: MergedRef): string => {
    if (r.kind === 'node') return names[r.index];
    if (r.kind === 'param')
      return g.once(`param:${r.name}`, () => {
        const t = usedParams.get(r.name)!;
        return g.initializer(r.name, ONNX_FLOAT, t.shape, t.toArray());
      });
    if (r.kind === 'const') {
      if (r.shape.every((d) => typeof d === 'number')) return g.floatConst(r.values, r.shape as number[]);
      const value: OnnxTensor = { name: 'value', type: ONNX_FLOAT, dims: [1], values: Float32Array.of(r.values[0]) };
      return g.node('ConstantOfShape', [g.shape(r.shape)], { value: { kind: 'tensor', value } });
    }
    const { tag } = r;
    let base: string;
    if (tag.part === 'values') {
      const f = schema.fields.find((x) => x.name === tag.field);
      if (f?.kind !== 'numeric')
        throw new Error(`ONNX export: the values of bag '${tag.field}' reach an op as a tensor`);
      base = g.fieldInput(tag.field);
    } else if (tag.part === 'sequenceMask') base = g.bag(tag.field).mask;
    else if (tag.part === 'sequenceScale') base = g.bag(tag.field).scale;
    else throw new Error(`ONNX export: the ${tag.part} of field '${tag.field}' reach an op as a float tensor`);
    return g.once(`source:${tag.field}:${tag.part}:${JSON.stringify(r.shape)}`, () =>
      g.node('Reshape', [base, g.shape(r.shape)]),
    );
  };
  const shapeOf = (r: MergedRef): readonly Dim[] => {
    if (r.kind === 'node') return events[r.index].shape;
    if (r.kind === 'param') return usedParams.get(r.name)!.shape;
    return r.shape;
  };
  events.forEach((e, i) => {
    const emitter = onnxEmitter(e.op);
    if (!emitter)
      throw new Error(
        `ONNX export: op '${e.op}' has no ONNX emitter; add one with registerOnnxEmitter('${e.op}', ...)`,
      );
    const inputs = e.inputs.map(resolve);
    const attrs = mapTensorAttrs(e.attrs, resolve);
    const ctx: EmitContext = {
      op: e.op,
      inputs,
      inputShapes: e.inputs.map(shapeOf),
      outputShape: e.shape,
      attrs,
      node: (opType, ins, a) => g.node(opType, ins, a),
      floatConst: (v, d) => g.floatConst(v, d),
      intConst: (v, d) => g.intConst(v, d),
      shape: (d) => g.shape(d),
      bag: (f) => g.bag(f),
      fieldInput: (f) => g.fieldInput(f),
    };
    names[i] = emitter(ctx);
  });

  const graphOutputs: OnnxValueInfo[] = [];
  const emitOutput = (name: string, value: string): void => {
    g.node('Reshape', [value, g.shape([{ coef: 1, symbols: [BATCH_DIM] }])], undefined, name);
    graphOutputs.push({ name, type: ONNX_FLOAT, shape: [BATCH_DIM] });
  };
  for (const key of ['pctr', 'pcvr', 'pctcvr']) {
    const r = outputs[key];
    emitOutput(key, resolve(r));
    if (r.kind === 'node' && events[r.index].op === 'sigmoid')
      emitOutput(`${key.slice(1)}_logit`, resolve(events[r.index].inputs[0]));
  }

  const kinds = modelKinds(model);
  const metadata: Record<string, string> = {
    schema: JSON.stringify(schema),
    method: model.method ?? 'unknown',
    base_model: kinds.join(',') || 'unknown',
    vocabulary_sha256: vocabularyHash(options.vocabulary),
    training_commit: options.trainingCommit ?? 'unknown',
    input_form: 'padded',
    ...options.metadata,
  };
  if (options.vocabulary !== undefined) metadata.vocabulary = JSON.stringify(options.vocabulary);
  return encodeOnnxModel({
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    producerName: 'esmm-ts',
    producerVersion: '0.1.0',
    graphName: options.graphName ?? 'esmm-ts',
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: g.inputs,
    outputs: graphOutputs,
    metadata,
  });
}

function mapTensorAttrs(a: TracedAttr, resolve: (r: MergedRef) => string): TracedAttr {
  if (Array.isArray(a)) return a.map((x) => mapTensorAttrs(x, resolve));
  if ((a as unknown) instanceof RefAttr) return { tensor: resolve((a as unknown as RefAttr).ref) };
  if (a && typeof a === 'object') {
    if ('source' in a || 'array' in a || 'coef' in a) return a;
    const out: Record<string, TracedAttr> = {};
    for (const [k, v] of Object.entries(a)) out[k] = mapTensorAttrs(v as TracedAttr, resolve);
    return out;
  }
  return a;
}

export { ONNX_BOOL };
