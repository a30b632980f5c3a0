/**
 * ESMM training throughput of esmm-ts on the peers' reference workload
 * (see benchmarks/peers/README.md): 8 single-valued fields and 2 bags of exactly 10 ids,
 * one table per field (dim 18) shared by both towers, towers 180→200→PReLU→80→PReLU→1,
 * loss mean BCE(pCTR, click) + mean BCE(pCTR·pCVR, click·conversion), Adam lr 1e-3
 * (lazy on the embedding rows, as PyTorch's SparseAdam).
 *
 * The model is built with the public API (`createModel`, `optim.Adam`, `tidy`) and loads
 * the initial weights and batches that `benchmarks/peers/make-init.mjs` writes to
 * `benchmarks/out/`, so its losses can be compared with the peers'.
 *
 * Usage (after compiling, e.g. `npx rolldown benchmarks/esmm-throughput.ts --platform node
 * --format esm --file benchmarks/out/esmm-throughput.mjs`):
 *
 *   node benchmarks/out/esmm-throughput.mjs                       # the standard configs, one child each
 *   node benchmarks/out/esmm-throughput.mjs --configs wasm,reference --batches 1024
 *   node benchmarks/out/esmm-throughput.mjs --child '{"backend":"wasm","batch":1024,...}'
 *
 * A child prints one line `RESULT <json>` on stdout. `--vocab N` (per field) switches to a
 * scaling run: the model keeps its own seeded initialisation (the files hold 100,000 rows
 * per field) and every id is remapped to `(id · 7919) mod N`, as the peers do for `--vocab`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  compileStep,
  fusions,
  optim,
  setFusions,
  tidy,
  type Fusions,
  type StepMode,
  type Tensor,
} from '../core/index.js';
// Imported here, not on first use, so that the bundled benchmark carries the gpu backend.
import '../kernels/gpu/index.js';
import { getBackend, setBackend, type SimdVariant, type WasmSimd } from '../kernels/index.js';
import {
  createModel,
  type Batch,
  type CvrMethod,
  type FieldBatch,
  type FieldSpec,
  type Schema,
} from '../models/index.js';

/** The base model of both towers: the reference workload's MLP, or DIN / DeepFM on the same fields. */
export type Workload = 'mlp' | 'din' | 'deepfm';

/** One measured configuration. */
export interface BenchConfig {
  /** Base model of the towers (default `mlp`). */
  workload?: Workload;
  /** Backend name: `reference`, `wasm` or `gpu`. */
  backend: string;
  /** gpu.js mode for the `gpu` backend. */
  mode?: string;
  /** Threads requested from the backend (the wasm backend currently runs kernels on one). */
  threads?: number;
  /**
   * SIMD of the wasm backend (default its own, `auto`). A child asked for `relaxed` is started with
   * `--experimental-wasm-relaxed-simd` where this Node needs the flag (Node 20).
   */
  simd?: WasmSimd;
  batch: number;
  warmup: number;
  repeats: number;
  steps: number;
  /** Losses read back after each of the first `lossSteps` steps (these steps are not timed). */
  lossSteps: number;
  /** Rows per field; default: the files' vocabulary (100,000), loaded from the init files. */
  vocab?: number;
  /**
   * Warm up over every batch once more before timing, so that each row the timed steps update has been
   * updated before: the steady state of a long run, with no first touch of a table, m or v page left.
   */
  steadyState?: boolean;
  /** Directory of the init files (default `benchmarks/out`). */
  dataDir?: string;
  /** After timing, run this many more steps with every backend method timed (0: none). */
  profileSteps?: number;
  /** `captured` (default, as the Trainer): steps replay a recorded plan (`compileStep`); `eager`: every op runs. */
  stepMode?: StepMode;
  /** Kernel fusions switched away from their defaults (`setFusions`), to measure each one on vs off. */
  fusions?: Partial<Fusions>;
}

/** Time per step spent in one backend method (from {@link BenchConfig.profileSteps}). */
export interface KernelProfileRow {
  method: string;
  msPerStep: number;
  callsPerStep: number;
}

/** What a child reports. */
export interface BenchResult {
  framework: 'esmm-ts';
  workload: Workload;
  stepMode: StepMode;
  /** The kernel fusions in effect. */
  fusions: Fusions;
  /** How the compiled step ran: replays, recordings, eager steps, and why it fell back if it did. */
  capture: { replays: number; recordings: number; eager: number; fallbackReason: string | null };
  backend: string;
  mode: string | null;
  threads: number;
  /** The wasm backend's SIMD variant (null on other backends). */
  simd: SimdVariant | null;
  batch: number;
  vocabPerField: number;
  totalRows: number;
  samplesPerSec: number;
  samplesPerSecRepeats: number[];
  msPerStep: number;
  /** CPU time per timed step, user + system, every thread of the process. */
  cpuMsPerStep: number;
  /** System (kernel) part of {@link BenchResult.cpuMsPerStep}: page faults show up here. */
  sysMsPerStep: number;
  /** Minor page faults per timed step (first touches of fresh memory); 0 in a steady state. */
  faultsPerStep: number;
  peakRssMB: number;
  /** RSS right after the model and optimizer state were allocated, before the first step. */
  rssAfterSetupMB: number;
  setupSeconds: number;
  losses: number[];
  warmupSteps: number;
  repeats: number;
  stepsPerRepeat: number;
  initFromFiles: boolean;
  arena?: { reservedMB: number; memoryMB: number; grows: number; growsDuringTiming: number };
  /** RSS (MB) at checkpoints of setup and training. */
  rssTrace: Record<string, number>;
  /** Per backend method, when profiled; `(outside kernels)` is the rest of the step (autodiff, host loops, allocation). */
  kernelProfile?: { stepMs: number; rows: KernelProfileRow[]; phases: StepPhases };
  notes: string[];
}

/** Milliseconds of a step in each phase: the loss (forward), backward, the optimizer step, the rest (read-back, scope). */
export interface StepPhases {
  forward: number;
  backward: number;
  optimizer: number;
  other: number;
}

interface Manifest {
  vocab: number;
  dim: number;
  singleFields: number;
  bagFields: number;
  bagLen: number;
  towerDims: number[];
  attentionDims: number[];
  dinPair: { sequence: string; target: string };
  tensors: { name: string; shape: number[]; file: string; workloads: Workload[] }[];
  data: { rows: number; ids: { file: string; shape: [number, number] }; labels: { file: string } };
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root, whether this runs as a compiled bundle under benchmarks/out/ or as source. */
function repoRoot(): string {
  let dir = HERE;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}
const ROOT = repoRoot();
const DEFAULT_DATA_DIR = path.join(ROOT, 'benchmarks', 'out');
/** Multiplier of the id remap for vocabularies other than the files' (prime, coprime to 10^k). */
const REMAP = 7919;

function readF32(dir: string, file: string): Float32Array {
  const b = fs.readFileSync(path.join(dir, file));
  // A view when the Buffer is 4-byte aligned (large files get their own ArrayBuffer), else a copy.
  return b.byteOffset % 4 === 0
    ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)
    : new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function readI32(dir: string, file: string): Int32Array {
  const b = fs.readFileSync(path.join(dir, file));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rssMB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/**
 * The reference workload's schema: fields f0..f7 (categorical) and b0, b1 (bags), each its own table;
 * for DIN the manifest's pair marks the sequence (b0) and the target it is attended against (f0).
 */
export function workloadSchema(m: Manifest, vocab: number, workload: Workload = 'mlp'): Schema {
  const din = workload === 'din';
  const fields: FieldSpec[] = [];
  for (let f = 0; f < m.singleFields; f++) {
    const name = `f${f}`;
    const isTarget = din && name === m.dinPair.target;
    fields.push({ kind: 'categorical', name, vocabSize: vocab, embeddingDim: m.dim, group: 'user', isTarget });
  }
  for (let b = 0; b < m.bagFields; b++) {
    const name = `b${b}`;
    const isSequence = din && name === m.dinPair.sequence;
    fields.push({
      kind: 'bag',
      name,
      vocabSize: vocab,
      embeddingDim: m.dim,
      group: 'user',
      pooling: 'sum',
      isSequence,
    });
  }
  return { fields };
}

/** All distinct batches of the data pool: batch k is rows [k·B, (k+1)·B). */
export function workloadBatches(m: Manifest, dir: string, batch: number, vocab: number): Batch[] {
  const rows = m.data.rows;
  const cols = m.data.ids.shape[1];
  const ids = readI32(dir, m.data.ids.file);
  const labels = readF32(dir, m.data.labels.file);
  const remap = (id: number): number => (vocab === m.vocab ? id : (id * REMAP) % vocab);
  const out: Batch[] = [];
  for (let r0 = 0; r0 + batch <= rows; r0 += batch) {
    const fields: Record<string, FieldBatch> = {};
    for (let f = 0; f < m.singleFields; f++) {
      const a = new Int32Array(batch);
      for (let r = 0; r < batch; r++) a[r] = remap(ids[(r0 + r) * cols + f]);
      fields[`f${f}`] = { kind: 'categorical', ids: a };
    }
    for (let b = 0; b < m.bagFields; b++) {
      const a = new Int32Array(batch * m.bagLen);
      const offsets = new Int32Array(batch + 1);
      const c0 = m.singleFields + b * m.bagLen;
      for (let r = 0; r < batch; r++) {
        offsets[r + 1] = (r + 1) * m.bagLen;
        for (let j = 0; j < m.bagLen; j++) a[r * m.bagLen + j] = remap(ids[(r0 + r) * cols + c0 + j]);
      }
      fields[`b${b}`] = { kind: 'bag', ids: a, offsets };
    }
    const click = new Float32Array(batch);
    const conversion = new Float32Array(batch);
    for (let r = 0; r < batch; r++) {
      click[r] = labels[(r0 + r) * 2];
      conversion[r] = labels[(r0 + r) * 2 + 1];
    }
    out.push({ size: batch, fields, click, conversion });
  }
  return out;
}

/**
 * esmm-ts parameter name for each init file's tensor name of the workload. Tables: `…tables.<field>`;
 * towers: `…<tower>Tower.net.layers.<i>.weight|bias` with Linear/PReLU alternating; DIN's activation
 * unit: `…<tower>Tower.units.<sequence>.layers.<i>…`; DeepFM: `…<tower>Tower.linearTables.<field>`, `…Tower.bias`.
 */
export function initNameMap(model: CvrMethod, m: Manifest, workload: Workload = 'mlp'): Map<string, string> {
  const names = model.namedParameters().map(([n]) => n);
  const find = (pred: (n: string) => boolean, what: string): string => {
    const hits = names.filter(pred);
    if (hits.length !== 1)
      throw new Error(`esmm-throughput: ${hits.length} parameters match ${what}: ${hits.join(', ')}`);
    return hits[0];
  };
  const map = new Map<string, string>();
  const layerIndex: Record<string, number> = { l1: 0, p1: 1, l2: 2, p2: 3, l3: 4 };
  for (const t of workloadTensors(m, workload)) {
    const emb = /^emb\.(\w+)$/.exec(t.name);
    if (emb) {
      map.set(
        t.name,
        find((n) => n.endsWith(`.tables.${emb[1]}`), `table ${emb[1]}`),
      );
      continue;
    }
    const lin = /^(ctr|cvr)\.lin\.(\w+)$/.exec(t.name);
    const fm = /^(ctr|cvr)\.fm\.bias$/.exec(t.name);
    const tw = /^(ctr|cvr)\.(att\.)?(l\d|p\d)\.(weight|bias)$/.exec(t.name);
    let suffix: string;
    if (lin) suffix = `${lin[1]}Tower.linearTables.${lin[2]}`;
    else if (fm) suffix = `${fm[1]}Tower.bias`;
    else if (tw) {
      const module = tw[2] ? `units.${m.dinPair.sequence}` : 'net';
      suffix = `${tw[1]}Tower.${module}.layers.${layerIndex[tw[3]]}.${tw[4]}`;
    } else throw new Error(`esmm-throughput: unknown init tensor '${t.name}'`);
    map.set(
      t.name,
      find((n) => n.endsWith(suffix), suffix),
    );
  }
  return map;
}

/** The init files' tensors that the workload's model has (older manifests list no workloads: all are MLP's). */
function workloadTensors(m: Manifest, workload: Workload): Manifest['tensors'] {
  return m.tensors.filter((t) => (t.workloads ?? ['mlp']).includes(workload));
}

function loadManifest(dir: string): Manifest {
  const file = path.join(dir, 'init-manifest.json');
  if (!fs.existsSync(file))
    throw new Error(`esmm-throughput: ${file} is missing; run node benchmarks/peers/make-init.mjs first`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
}

/** Run one configuration in this process. */
export function runConfig(cfg: BenchConfig): BenchResult {
  const dir = cfg.dataDir ?? DEFAULT_DATA_DIR;
  const m = loadManifest(dir);
  const vocab = cfg.vocab ?? m.vocab;
  const fromFiles = vocab === m.vocab;
  const notes: string[] = [];
  const t0 = performance.now();
  const rssTrace: Record<string, number> = { start: rssMB() };
  setBackend(cfg.backend, { mode: cfg.mode, threads: cfg.threads, simd: cfg.simd });
  if (cfg.fusions) setFusions(cfg.fusions);
  const be = getBackend();
  const simd = (be as { simd?: SimdVariant }).simd ?? null;
  if (simd) notes.push(`${simd} SIMD`);

  const workload = cfg.workload ?? 'mlp';
  if (workload !== 'mlp' && !fromFiles)
    throw new Error('esmm-throughput: scaling runs (--vocab) are for the mlp workload');
  const schema = workloadSchema(m, vocab, workload);
  const hidden = m.towerDims.slice(1, -1);
  // DIN's activation unit as the peer builds it: the paper's 80-40 with PReLU, scores unnormalised.
  const attention = { hidden: m.attentionDims?.slice(1, -1), normalization: 'none', activation: 'prelu' } as const;
  const tower =
    workload === 'din' ? { hidden, activation: 'prelu' as const, attention } : { hidden, activation: 'prelu' as const };
  const model = createModel({ method: 'esmm', base: workload, schema, tower, seed: 2018 });
  rssTrace.modelCreated = rssMB();
  if (fromFiles) {
    const map = initNameMap(model, m, workload);
    const names = new Set(model.namedParameters().map(([n]) => n));
    // One tensor at a time, so that only one file's bytes are on the host at once.
    for (const t of workloadTensors(m, workload)) {
      const name = map.get(t.name)!;
      model.loadStateDict({ [name]: readF32(dir, t.file) }, false);
      names.delete(name);
    }
    if (names.size > 0) throw new Error(`esmm-throughput: no init file for ${[...names].join(', ')}`);
  } else {
    notes.push(
      `scaling run: ${vocab.toLocaleString('en-US')} rows per field, seeded esmm-ts initialisation, ids remapped (id·${REMAP}) mod ${vocab}`,
    );
  }
  const opt = new optim.Adam(model.parameters(), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8 });
  const batches = workloadBatches(m, dir, cfg.batch, vocab);
  const setupSeconds = (performance.now() - t0) / 1000;
  rssTrace.setupDone = rssMB();

  let k = 0;
  // Time per phase, summed while the profiled steps run (null otherwise; eager steps only).
  let phases: StepPhases | null = null;
  const stepMode = cfg.stepMode ?? 'captured';
  // The step as the Trainer runs it: compiled, so that steps after the first few replay a plan.
  const compiled = compileStep(
    (batch: Batch): Tensor =>
      tidy(() => {
        const t0 = performance.now();
        opt.zeroGrad();
        const loss: Tensor = model.loss(batch);
        const t1 = performance.now();
        loss.backward();
        const t2 = performance.now();
        opt.step();
        if (phases) {
          phases.forward += t1 - t0;
          phases.backward += t2 - t1;
          phases.optimizer += performance.now() - t2;
        }
        return loss;
      }),
    { mode: stepMode },
  );
  // One training step; the loss stays on the backend unless asked for.
  const step = (read: boolean): number => {
    const batch = batches[k++ % batches.length];
    const t0 = performance.now();
    const loss = compiled(batch);
    const value = read ? loss.item() : NaN;
    loss.dispose();
    if (phases) phases.other += performance.now() - t0;
    return value;
  };
  // Touch the Adam state once before measuring RSS (it is created on the first step).
  const losses: number[] = [];
  const rssAfterSetupMB = rssMB();
  for (let i = 0; i < cfg.lossSteps; i++) {
    losses.push(step(true));
    if (i === 0) rssTrace.afterFirstStep = rssMB();
  }
  for (let i = 0; i < cfg.warmup; i++) step(i === cfg.warmup - 1);
  if (cfg.steadyState) for (let i = 0; i < batches.length; i++) step(false);
  // A plan replays from the fourth step on (the first creates Adam's state, two more are recorded and
  // compared): timing starts once it does, as the Trainer would be after its first steps.
  for (let i = 0; i < 4 && stepMode === 'captured' && compiled.stats.replays === 0 && !compiled.fallbackReason; i++)
    step(false);
  rssTrace.afterWarmup = rssMB();
  const arenaOf = (): { reserved: number; memoryBytes: number; grows: number } | null => {
    const s = (be as { stats?: () => { reserved: number; memoryBytes: number; grows: number } }).stats;
    return be.name === 'wasm' && s ? s.call(be) : null;
  };
  const growsBefore = arenaOf()?.grows ?? 0;
  const rates: number[] = [];
  // CPU time (all threads of the process) as well as wall time: on a shared machine it is the steadier figure.
  const cpu0 = process.cpuUsage();
  const faults0 = process.resourceUsage().minorPageFault;
  for (let r = 0; r < cfg.repeats; r++) {
    const ts = performance.now();
    for (let i = 0; i < cfg.steps; i++) step(i === cfg.steps - 1); // the last read syncs device backends
    rates.push((cfg.steps * cfg.batch) / ((performance.now() - ts) / 1000));
  }
  const cpu = process.cpuUsage(cpu0);
  const timedSteps = cfg.repeats * cfg.steps;
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / timedSteps;
  const sysMsPerStep = cpu.system / 1000 / timedSteps;
  const faultsPerStep = (process.resourceUsage().minorPageFault - faults0) / timedSteps;
  rssTrace.afterTiming = rssMB();
  const arena = arenaOf();
  const sps = median(rates);
  let kernelProfile: BenchResult['kernelProfile'];
  if (cfg.profileSteps) {
    phases = { forward: 0, backward: 0, optimizer: 0, other: 0 };
    const eagerBefore = compiled.stats.eager;
    const profiled = profileKernels(be as unknown as Record<string, unknown>, cfg.profileSteps, () => step(false));
    const n = cfg.profileSteps;
    const p: StepPhases = phases;
    // `other` summed whole steps; the rest of a step is what the phases did not cover. A replayed
    // step has no phases (its kernels run as one program): all of it is `other`.
    p.other -= p.forward + p.backward + p.optimizer;
    if (compiled.stats.eager === eagerBefore && stepMode === 'captured') notes.push('profiled steps were replays');
    kernelProfile = {
      ...profiled,
      phases: { forward: p.forward / n, backward: p.backward / n, optimizer: p.optimizer / n, other: p.other / n },
    };
    phases = null;
  }
  return {
    framework: 'esmm-ts',
    workload,
    stepMode,
    fusions: { ...fusions() },
    capture: { ...compiled.stats, fallbackReason: compiled.fallbackReason },
    backend: be.name,
    mode: cfg.mode ?? null,
    threads: cfg.threads ?? 1,
    simd,
    batch: cfg.batch,
    vocabPerField: vocab,
    totalRows: vocab * (m.singleFields + m.bagFields),
    samplesPerSec: sps,
    samplesPerSecRepeats: rates,
    msPerStep: (1000 * cfg.batch) / sps,
    cpuMsPerStep,
    sysMsPerStep,
    faultsPerStep,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    rssAfterSetupMB,
    setupSeconds,
    losses,
    warmupSteps: cfg.lossSteps + cfg.warmup,
    repeats: cfg.repeats,
    stepsPerRepeat: cfg.steps,
    initFromFiles: fromFiles,
    arena: arena
      ? {
          reservedMB: arena.reserved / 2 ** 20,
          memoryMB: arena.memoryBytes / 2 ** 20,
          grows: arena.grows,
          growsDuringTiming: arena.grows - growsBefore,
        }
      : undefined,
    rssTrace,
    kernelProfile,
    notes,
  };
}

/** Wrap every method of the backend with a timer for `steps` steps; returns ms per step by method. */
function profileKernels(
  be: Record<string, unknown>,
  steps: number,
  step: () => void,
): { stepMs: number; rows: KernelProfileRow[] } {
  const names = new Set<string>();
  for (
    let proto = Object.getPrototypeOf(be) as object | null;
    proto && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    for (const n of Object.getOwnPropertyNames(proto))
      if (n !== 'constructor' && typeof be[n] === 'function') names.add(n);
  }
  const acc = new Map<string, { ms: number; calls: number }>();
  let depth = 0;
  for (const n of names) {
    const fn = be[n] as (...a: unknown[]) => unknown;
    const slot = { ms: 0, calls: 0 };
    acc.set(n, slot);
    be[n] = (...a: unknown[]): unknown => {
      if (depth > 0) return fn.apply(be, a); // count only the outermost backend call
      depth++;
      const t = performance.now();
      try {
        return fn.apply(be, a);
      } finally {
        slot.ms += performance.now() - t;
        slot.calls++;
        depth--;
      }
    };
  }
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const stepMs = (performance.now() - t0) / steps;
  for (const n of names) delete be[n];
  const rows = [...acc]
    .filter(([, s]) => s.calls > 0)
    .map(([method, s]) => ({ method, msPerStep: s.ms / steps, callsPerStep: s.calls / steps }));
  const inKernels = rows.reduce((a, r) => a + r.msPerStep, 0);
  rows.push({ method: '(outside kernels)', msPerStep: stepMs - inKernels, callsPerStep: 0 });
  rows.sort((a, b) => b.msPerStep - a.msPerStep);
  return { stepMs, rows };
}

/** Run one configuration in a child process (own peak RSS); null with the reason on failure. */
export function runInChild(
  cfg: BenchConfig,
  options: { xvfb?: boolean; timeoutMs?: number } = {},
): BenchResult | { error: string; config: BenchConfig } {
  const self = fileURLToPath(import.meta.url);
  const argv = [...(cfg.simd === 'relaxed' ? relaxedSimdFlags() : []), self, '--child', JSON.stringify(cfg)];
  const [cmd, args] = options.xvfb ? ['xvfb-run', ['-a', process.execPath, ...argv]] : [process.execPath, argv];
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 20 * 60_000,
    maxBuffer: 64 * 2 ** 20,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status === 0 && line) return JSON.parse(line.slice(7)) as BenchResult;
  const why = r.error
    ? String(r.error)
    : `exit ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`;
  return { error: why, config: cfg };
}

let relaxedFlags: string[] | undefined;

/**
 * The Node flags a child needs for relaxed SIMD: `--experimental-wasm-relaxed-simd` where this
 * Node accepts it (Node 20 validates relaxed SIMD only with it), else none (later Node has it on).
 */
export function relaxedSimdFlags(): string[] {
  const flag = '--experimental-wasm-relaxed-simd';
  relaxedFlags ??= spawnSync(process.execPath, [flag, '-e', '0']).status === 0 ? [flag] : [];
  return relaxedFlags;
}

/** The standard configurations: fast backends get the peers' step counts, slow ones fewer (stated in their notes). */
export function standardConfigs(
  batches: readonly number[],
  quick = false,
): { cfg: BenchConfig; xvfb: boolean; label: string }[] {
  const out: { cfg: BenchConfig; xvfb: boolean; label: string }[] = [];
  for (const batch of batches) {
    const fast = quick ? { warmup: 2, repeats: 3, steps: 5 } : { warmup: 5, repeats: 5, steps: 20 };
    const slow = quick ? { warmup: 1, repeats: 3, steps: 1 } : { warmup: 1, repeats: 3, steps: 3 };
    const lossSteps = 20;
    out.push({ label: 'wasm', xvfb: false, cfg: { backend: 'wasm', threads: 1, batch, lossSteps, ...fast } });
    out.push({
      label: 'wasm relaxed SIMD',
      xvfb: false,
      cfg: { backend: 'wasm', threads: 1, simd: 'relaxed', batch, lossSteps, ...fast },
    });
    out.push({
      label: 'reference',
      xvfb: false,
      cfg: { backend: 'reference', batch, lossSteps, ...(quick ? slow : { warmup: 2, repeats: 3, steps: 10 }) },
    });
    out.push({
      label: 'gpu:webasm',
      xvfb: false,
      cfg: { backend: 'gpu', mode: 'webasm', batch, lossSteps: 5, ...slow },
    });
    out.push({ label: 'gpu:cpu', xvfb: false, cfg: { backend: 'gpu', mode: 'cpu', batch, lossSteps: 5, ...slow } });
    out.push({
      label: 'gpu:headlessgl',
      xvfb: true,
      cfg: { backend: 'gpu', mode: 'headlessgl', batch, lossSteps: 5, ...slow },
    });
  }
  return out;
}

function parseArgs(argv: string[]): {
  child?: BenchConfig;
  configs?: string[];
  batches: number[];
  quick: boolean;
  out: string;
} {
  const a: { child?: BenchConfig; configs?: string[]; batches: number[]; quick: boolean; out: string } = {
    batches: [1024],
    quick: false,
    out: path.join(DEFAULT_DATA_DIR, 'esmm-ts.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => argv[++i] ?? '';
    if (k === '--child') a.child = JSON.parse(v()) as BenchConfig;
    else if (k === '--configs') a.configs = v().split(',').filter(Boolean);
    else if (k === '--batches') a.batches = v().split(',').filter(Boolean).map(Number);
    else if (k === '--quick') a.quick = true;
    else if (k === '--out') a.out = path.resolve(v());
    else throw new Error(`esmm-throughput: unknown argument '${k}'`);
  }
  return a;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    process.stdout.write(`RESULT ${JSON.stringify(runConfig(args.child))}\n`);
    return;
  }
  const results: (BenchResult | { error: string; config: BenchConfig })[] = [];
  for (const { cfg, xvfb, label } of standardConfigs(args.batches, args.quick)) {
    if (args.configs && !args.configs.includes(label)) continue;
    const r = runInChild(cfg, { xvfb });
    results.push(r);
    if ('error' in r) console.log(`${label} b${cfg.batch}: failed: ${r.error}`);
    else
      console.log(
        `${label} b${cfg.batch}: ${r.samplesPerSec.toFixed(0)} samples/s, ${r.msPerStep.toFixed(1)} ms/step, peak RSS ${r.peakRssMB.toFixed(0)} MB, losses ${r.losses
          .slice(0, 3)
          .map((x) => x.toFixed(4))
          .join(' ')}`,
      );
  }
  fs.mkdirSync(path.dirname(args.out), { recursive: true });
  fs.writeFileSync(args.out, JSON.stringify({ generatedAt: new Date().toISOString(), results }, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
