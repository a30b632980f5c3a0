/**
 * A small typed WebAssembly assembler: enough of the binary format (types, imports,
 * functions, exports, code) and of the instruction set (i32, f32, f64, the f32x4 part of
 * SIMD and relaxed SIMD's multiply-add) to write kernels as readable TypeScript that
 * produces module bytes.
 *
 * Instructions are emitted in stack order; structured control flow (`block`, `loop`,
 * `if`) takes callbacks so nesting is visible in the TypeScript source, and
 * {@link FunctionBuilder.forRange} hides the usual loop/branch boilerplate.
 */

/** A WebAssembly value type. */
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const valTypeCode: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Unsigned LEB128, as used for sizes and indices. */
export function uleb(value: number, out: number[] = []): number[] {
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128, as used for i32 constants. */
export function sleb(value: number, out: number[] = []): number[] {
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function encodeString(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

// Appends without spreading: function bodies can be longer than the engine's argument limit.
function append(out: number[], bytes: readonly number[]): number[] {
  for (const b of bytes) out.push(b);
  return out;
}

function section(id: number, body: number[]): number[] {
  return append([id, ...uleb(body.length)], body);
}

function vector(items: number[][]): number[] {
  const out = uleb(items.length);
  for (const item of items) append(out, item);
  return out;
}

/** A local variable (parameters included) of a function under construction. */
export interface Local {
  readonly index: number;
  readonly type: ValType;
}

/** Index of a function in the module's function index space (imports first). */
export interface FuncRef {
  readonly index: number;
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

// Natural alignment (log2 bytes) for each memory access width.
const ALIGN = { 1: 0, 2: 1, 4: 2, 8: 3, 16: 4 } as const;

/** Instructions without immediates, by method name: their opcode. */
const PLAIN_OPS = {
  unreachable: 0x00,
  ret: 0x0f,
  drop: 0x1a,
  // Pops a, b, cond: a when cond ≠ 0, else b.
  select: 0x1b,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32Ne: 0x47,
  i32LtS: 0x48,
  i32GtS: 0x4a,
  i32LeS: 0x4c,
  i32GeS: 0x4e,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32And: 0x71,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  f32Gt: 0x5e,
  f32Abs: 0x8b,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
  f32Sqrt: 0x91,
  f64Eq: 0x61,
  f64Lt: 0x63,
  f64Gt: 0x64,
  f64Ge: 0x66,
  f64Abs: 0x99,
  f64Neg: 0x9a,
  f64Sqrt: 0x9f,
  f64Add: 0xa0,
  f64Sub: 0xa1,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  f64Min: 0xa4,
  f64Max: 0xa5,
  f64ConvertI32S: 0xb7,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
} as const;

/** SIMD instructions without immediates (after the 0xfd prefix): their opcode. */
const SIMD_OPS = {
  f32x4Splat: 0x13,
  f32x4Eq: 0x41,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  f32x4Le: 0x45,
  f32x4Ge: 0x46,
  v128Not: 0x4d,
  v128And: 0x4e,
  // a & ~b.
  v128AndNot: 0x4f,
  v128Or: 0x50,
  // Pops a, b, mask: bits of a where mask is 1, else bits of b.
  v128Bitselect: 0x52,
  f32x4Abs: 0xe0,
  f32x4Neg: 0xe1,
  f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  // Relaxed SIMD (not in every runtime; see kernels.ts): pops a, b, c, pushes a·b + c,
  // rounded once (fused) or twice, as the hardware prefers.
  f32x4RelaxedMadd: 0x105,
} as const;

/** Memory instructions that take a byte offset (default 0): their opcode and access width. */
const MEMORY_OPS = {
  i32Load: [0x28, 4],
  f32Load: [0x2a, 4],
  f64Load: [0x2b, 8],
  i32Store: [0x36, 4],
  f32Store: [0x38, 4],
  f64Store: [0x39, 8],
} as const;

/** The instruction methods generated from the tables above. */
type TableOps = { [K in keyof typeof PLAIN_OPS | keyof typeof SIMD_OPS]: () => FunctionBuilder } & {
  [K in keyof typeof MEMORY_OPS]: (offset?: number) => FunctionBuilder;
};

// The table's methods are installed on the prototype in the class's static block, so none is left undefined.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface FunctionBuilder extends TableOps {}

/**
 * Emits the body of one function. Methods push instructions and return `this` for chaining;
 * the instructions without structure are generated from the opcode tables above.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class FunctionBuilder {
  static {
    const install = (name: string, emit: (f: FunctionBuilder, offset: number) => FunctionBuilder) =>
      Object.defineProperty(FunctionBuilder.prototype, name, {
        value(this: FunctionBuilder, offset = 0) {
          return emit(this, offset);
        },
      });
    for (const [name, code] of Object.entries(PLAIN_OPS)) install(name, (f) => f.op(code));
    for (const [name, code] of Object.entries(SIMD_OPS)) install(name, (f) => f.simd(code));
    for (const [name, [code, width]] of Object.entries(MEMORY_OPS))
      install(name, (f, offset) => f.mem(code, width, offset));
  }

  /** Instruction bytes, without the trailing `end`. */
  readonly code: number[] = [];
  private readonly localTypes: ValType[] = [];
  private readonly paramCount: number;

  constructor(readonly params: readonly ValType[]) {
    this.paramCount = params.length;
  }

  /** The i-th parameter. */
  param(i: number): Local {
    if (i < 0 || i >= this.paramCount) throw new Error(`no parameter ${i}`);
    return { index: i, type: this.params[i] };
  }

  /** Declare a new local of `type`. */
  local(type: ValType): Local {
    this.localTypes.push(type);
    return { index: this.paramCount + this.localTypes.length - 1, type };
  }

  /** The local declarations, run-length encoded as the binary format wants. */
  encodeLocals(): number[] {
    const groups: number[][] = [];
    let i = 0;
    while (i < this.localTypes.length) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      groups.push([...uleb(j - i), valTypeCode[this.localTypes[i]]]);
      i = j;
    }
    return vector(groups);
  }

  private op(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }
  private simd(opcode: number, ...imm: number[]): this {
    this.code.push(0xfd, ...uleb(opcode), ...imm);
    return this;
  }
  private mem(opcode: number, width: 1 | 2 | 4 | 8 | 16, offset: number): this {
    return this.op(opcode, ...uleb(ALIGN[width]), ...uleb(offset));
  }
  private simdMem(opcode: number, width: 4 | 8 | 16, offset: number): this {
    return this.simd(opcode, ...uleb(ALIGN[width]), ...uleb(offset));
  }

  // ---- control ----
  /** `block … end`; a `br` of depth 0 inside `body` jumps past the end. */
  block(body: () => void): this {
    this.op(0x02, 0x40);
    body();
    return this.op(0x0b);
  }
  /** `loop … end`; a `br` of depth 0 inside `body` jumps back to the top. */
  loop(body: () => void): this {
    this.op(0x03, 0x40);
    body();
    return this.op(0x0b);
  }
  /** Pops an i32 condition: `if … else … end` without results. */
  ifElse(then: () => void, otherwise?: () => void): this {
    this.op(0x04, 0x40);
    then();
    if (otherwise) {
      this.op(0x05);
      otherwise();
    }
    return this.op(0x0b);
  }
  /** Pops an i32 condition: `if (result t) … else … end`, both arms leave one value. */
  select2(type: ValType, then: () => void, otherwise: () => void): this {
    this.op(0x04, valTypeCode[type]);
    then();
    this.op(0x05);
    otherwise();
    return this.op(0x0b);
  }
  br(depth: number): this {
    return this.op(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...uleb(depth));
  }
  call(f: FuncRef): this {
    return this.op(0x10, ...uleb(f.index));
  }

  /**
   * `for (i = start; i < end; i += step) body()` on i32 locals. `start` and `end` are
   * emitters so they can be constants or expressions; `end` is re-evaluated each trip,
   * so pass a local when it is costly.
   */
  forRange(i: Local, start: () => void, end: () => void, step: number, body: () => void): this {
    start();
    this.set(i);
    return this.block(() =>
      this.loop(() => {
        this.get(i);
        end();
        this.i32GeS().brIf(1);
        body();
        this.get(i).i32(step).i32Add().set(i);
        this.br(0);
      }),
    );
  }

  /** `for (i = 0; i < end; i += step) body()`, the common case of {@link FunctionBuilder.forRange}. */
  forUpTo(i: Local, end: Local, step: number, body: () => void): this {
    return this.forRange(
      i,
      () => this.i32(0),
      () => this.get(end),
      step,
      body,
    );
  }

  /** Pushes base + off, a byte address. */
  at(base: Local, off: Local): FunctionBuilder {
    return this.get(base).get(off).i32Add();
  }
  /** Pushes base + index * 4, the address of a 4-byte element. */
  elemAt(base: Local, index: Local): FunctionBuilder {
    return this.get(base).get(index).i32(2).i32Shl().i32Add();
  }

  // ---- locals and constants ----
  get(l: Local): this {
    return this.op(0x20, ...uleb(l.index));
  }
  set(l: Local): this {
    return this.op(0x21, ...uleb(l.index));
  }
  tee(l: Local): this {
    return this.op(0x22, ...uleb(l.index));
  }
  i32(v: number): this {
    return this.op(0x41, ...sleb(v));
  }
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.op(0x43, ...b);
  }
  f64(v: number): this {
    const b = new Uint8Array(new Float64Array([v]).buffer);
    return this.op(0x44, ...b);
  }

  // ---- memory ----
  /** memory.copy: pops dest, src, byte length. */
  memoryCopy(): this {
    return this.op(0xfc, ...uleb(10), 0x00, 0x00);
  }
  /** memory.fill: pops dest, byte value, byte length. */
  memoryFill(): this {
    return this.op(0xfc, ...uleb(11), 0x00);
  }

  // ---- i32 ----

  // ---- f32 ----

  // ---- f64 ----

  // ---- v128 / f32x4 ----
  v128Load(offset = 0): this {
    return this.simdMem(0x00, 16, offset);
  }
  /** Loads one f32 and splats it to all four lanes. */
  v128Load32Splat(offset = 0): this {
    return this.simdMem(0x09, 4, offset);
  }
  v128Store(offset = 0): this {
    return this.simdMem(0x0b, 16, offset);
  }
  /** Loads two f32 into lanes 0 and 1, zeroing lanes 2 and 3. */
  v128Load64Zero(offset = 0): this {
    return this.simdMem(0x5d, 8, offset);
  }
  /** Pops address, vector: stores 64-bit lane `lane` (two f32). */
  v128Store64Lane(lane: number, offset = 0): this {
    return this.simdMem(0x5b, 8, offset).op(lane);
  }
  /** Pops address, vector: stores 32-bit lane `lane` (one f32). */
  v128Store32Lane(lane: number, offset = 0): this {
    return this.simdMem(0x5a, 4, offset).op(lane);
  }
  /**
   * i8x16.shuffle of whole 32-bit lanes: pops a, b and pushes lanes `lanes` of their
   * concatenation (0–3 from a, 4–7 from b), the form engines match to unpack instructions.
   */
  shuffle32(lanes: readonly [number, number, number, number]): this {
    const bytes: number[] = [];
    for (const lane of lanes) for (let b = 0; b < 4; b++) bytes.push(4 * lane + b);
    return this.simd(0x0d, ...bytes);
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(0x1f, lane);
  }
}

interface FuncDef {
  name: string | null;
  typeIndex: number;
  body: FunctionBuilder;
}

interface ImportDef {
  module: string;
  name: string;
  desc: number[];
}

/** Assembles a module: imported memory and functions, defined functions, exports. */
export class ModuleBuilder {
  private readonly types: string[] = [];
  private readonly typeBytes: number[][] = [];
  private readonly imports: ImportDef[] = [];
  private readonly funcs: FuncDef[] = [];
  private importedFuncs = 0;
  private sealedImports = false;

  private typeIndex(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(',')}->${results.join(',')}`;
    let i = this.types.indexOf(key);
    if (i < 0) {
      i = this.types.length;
      this.types.push(key);
      this.typeBytes.push([
        0x60,
        ...vector(params.map((p) => [valTypeCode[p]])),
        ...vector(results.map((r) => [valTypeCode[r]])),
      ]);
    }
    return i;
  }

  /** Import a linear memory (the arena) of at least `minPages` 64 KiB pages. */
  importMemory(module: string, name: string, minPages: number, maxPages?: number, shared = false): void {
    const flags = (maxPages !== undefined ? 1 : 0) | (shared ? 2 : 0);
    const limits = [flags, ...uleb(minPages), ...(maxPages !== undefined ? uleb(maxPages) : [])];
    this.imports.push({ module, name, desc: [0x02, ...limits] });
  }

  /** Import a host function; imports must precede every defined function. */
  importFunc(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): FuncRef {
    if (this.sealedImports) throw new Error('import functions before defining any');
    const t = this.typeIndex(params, results);
    this.imports.push({ module, name, desc: [0x00, ...uleb(t)] });
    return { index: this.importedFuncs++, params, results };
  }

  /**
   * Define a function; `name` non-null exports it. The body callback receives the
   * builder with the parameters already declared.
   */
  func(
    name: string | null,
    params: readonly ValType[],
    results: readonly ValType[],
    body: (f: FunctionBuilder) => void,
  ): FuncRef {
    this.sealedImports = true;
    const fb = new FunctionBuilder(params);
    body(fb);
    this.funcs.push({ name, typeIndex: this.typeIndex(params, results), body: fb });
    return { index: this.importedFuncs + this.funcs.length - 1, params, results };
  }

  /** The module's binary encoding. */
  build(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    append(out, section(1, vector(this.typeBytes)));
    append(
      out,
      section(2, vector(this.imports.map((im) => [...encodeString(im.module), ...encodeString(im.name), ...im.desc]))),
    );
    append(out, section(3, vector(this.funcs.map((f) => uleb(f.typeIndex)))));
    const exports = this.funcs
      .map((f, i) => ({ f, i }))
      .filter(({ f }) => f.name !== null)
      .map(({ f, i }) => [...encodeString(f.name as string), 0x00, ...uleb(this.importedFuncs + i)]);
    append(out, section(7, vector(exports)));
    const bodies = this.funcs.map((f) => {
      const body = append(append(f.body.encodeLocals(), f.body.code), [0x0b]);
      return append(uleb(body.length), body);
    });
    append(out, section(10, vector(bodies)));
    return Uint8Array.from(out);
  }
}
