/**
 * The demo's training session, without any DOM: a simulated funnel, several methods trained
 * side by side on one backend from the same batches, test metrics every few steps, the
 * simulator's oracle metrics, a reliability diagram of pCVR, scoring and export.
 *
 * It uses only the package's public entry points, as an application would.
 */
import { optim, Tensor } from 'esmm-ts/core';
import { getBackend, ReferenceBackend, setBackend, WasmBackend, type Backend, type PoolStats } from 'esmm-ts/kernels';
import {
  createModel,
  encodeSafetensors,
  esmmMetrics,
  FunnelSimulator,
  reliabilityBins,
  trainStepAsync,
  type CvrMethod,
  type EsmmMetrics,
  type HostPredictions,
  type ImpressionLog,
  type MethodName,
  type ReliabilityBin,
  type SimulatedBatch,
} from 'esmm-ts/models';
import { exportOnnx } from 'esmm-ts/serving';

/** Where the demo trains. */
export type BackendChoice =
  { kind: 'wasm'; threads: number } | { kind: 'webgl2' } | { kind: 'webgpu' } | { kind: 'reference' };

/** Everything the page lets a person set. */
export interface DemoSettings {
  /** Simulated users and items. */
  users: number;
  items: number;
  /** Target CTR over impressions and CVR over clicks. */
  ctr: number;
  cvr: number;
  /** Selection-bias strength: how much "bait" raises clicks and lowers conversions (the simulator's `bait`). */
  bias: number;
  trainRows: number;
  testRows: number;
  batchSize: number;
  epochs: number;
  /** Stop each method after this many steps (0: run every epoch). */
  maxSteps: number;
  lr: number;
  methods: MethodName[];
  base: string;
  backend: BackendChoice;
  /** Steps between test evaluations. */
  evalEvery: number;
  seed: number;
}

/**
 * Defaults chosen so that ESMM visibly beats BASE on the entire-space CVR AUC within a
 * minute: a small world (embeddings see each id often), enough conversions per click to
 * learn from, strong bait, and a learning rate above the paper's. Measured in Node on the
 * same seed: after 1.5 of the 3 epochs ESMM's entire-space CVR AUC is about 0.61-0.64 and
 * BASE's 0.57 (the oracle's 0.89), while BASE stays level on clicked rows.
 */
export const DEFAULT_SETTINGS: DemoSettings = {
  users: 2000,
  items: 10_000,
  ctr: 0.03,
  cvr: 0.3,
  bias: 2,
  trainRows: 150_000,
  testRows: 20_000,
  batchSize: 1024,
  epochs: 3,
  maxSteps: 0,
  lr: 0.01,
  methods: ['esmm', 'base'],
  base: 'mlp',
  backend: { kind: 'wasm', threads: 2 },
  evalEvery: 25,
  seed: 1,
};

/** Test metrics of one method at one step. */
export interface EvalPoint {
  step: number;
  cvrAuc: number;
  ctcvrAuc: number;
  cvrAucEntireSpace: number;
}

/** What the session reports while it runs. */
export interface SessionEvents {
  /** After each step of every method (`step` counts steps per method). */
  progress?(p: Progress): void;
  /** The loss of one method's step. */
  loss?(method: MethodName, step: number, loss: number): void;
  /** Test metrics of every method at `step`. */
  evaluated?(step: number, points: ReadonlyMap<MethodName, EvalPoint>): void;
}

/** Progress of a run. */
export interface Progress {
  step: number;
  totalSteps: number;
  /** Optimizer steps (all methods together) and training samples per second of training time. */
  stepsPerSecond: number;
  samplesPerSecond: number;
}

/** What a finished run produced. */
export interface RunResult {
  backend: string;
  /** Threads of the wasm backend (1 elsewhere). */
  threads: number;
  /** Worker-pool counters of the wasm backend (null elsewhere): proof that workers computed. */
  pool: PoolStats | null;
  steps: number;
  /** Every step's loss, per method. */
  losses: Record<string, number[]>;
  evals: Record<string, EvalPoint[]>;
  final: Record<string, EsmmMetrics>;
  /** pCVR against the true pCVR over all test impressions, per method. */
  reliability: Record<string, ReliabilityBin[]>;
  /** The simulator's true probabilities scored as predictions. */
  oracle: { cvrAuc: number; ctcvrAuc: number; cvrAucEntireSpace: number };
  /** Seconds of each step (every method's update on one batch), warm-up (kernel compilation) included. */
  stepSeconds: number[];
  /** Seconds spent in training steps (evaluation excluded) and samples trained per second of it. */
  trainSeconds: number;
  samplesPerSecond: number;
  stopped: boolean;
}

/** Rows scored per call when predicting the test set or a user's items. */
const SCORE_CHUNK = 4096;

/** The backends the page can offer, with what this browser supports. */
export interface Support {
  isolated: boolean;
  maxThreads: number;
  webgl2: boolean;
  webgpu: string | null;
}

/** Detects what the browser offers: cross-origin isolation (wasm threads), WebGL2, a WebGPU adapter. */
export async function detectSupport(): Promise<Support> {
  const isolated = globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
  const maxThreads = isolated ? Math.max(1, Math.min(16, navigator.hardwareConcurrency || 1)) : 1;
  let webgl2 = false;
  try {
    webgl2 = document.createElement('canvas').getContext('webgl2') !== null;
  } catch {
    webgl2 = false;
  }
  let webgpu: string | null = null;
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<GpuAdapterInfo | null> } }).gpu;
  if (gpu) {
    try {
      const adapter = await gpu.requestAdapter();
      if (adapter) {
        const info = adapter.info;
        webgpu = [info?.vendor, info?.architecture].filter(Boolean).join(' ') || 'adapter';
        if (adapter.isFallbackAdapter) webgpu += ' (software fallback)';
      }
    } catch {
      webgpu = null;
    }
  }
  return { isolated, maxThreads, webgl2, webgpu };
}

interface GpuAdapterInfo {
  info?: { vendor?: string; architecture?: string };
  isFallbackAdapter?: boolean;
}

/** Creates the chosen backend and waits until it is ready (wasm workers started, webgpu adapter found). */
export async function createDemoBackend(choice: BackendChoice): Promise<Backend> {
  switch (choice.kind) {
    case 'wasm': {
      const b = new WasmBackend({ threads: choice.threads });
      await b.ready();
      return b;
    }
    // The gpu backend's entry loads gpu.js, so it is imported only when a gpu backend is picked.
    case 'webgl2': {
      const { GpuBackend } = await import('esmm-ts/kernels/gpu');
      return new GpuBackend({ mode: 'webgl2' });
    }
    case 'webgpu': {
      const { QueuedGpuBackend } = await import('esmm-ts/kernels/gpu');
      return QueuedGpuBackend.create();
    }
    case 'reference':
      return new ReferenceBackend();
  }
}

/** Releases what a backend holds (worker threads, gpu contexts). */
export async function releaseBackend(b: Backend): Promise<void> {
  const disposable = b as Backend & { dispose?: () => void | Promise<void> };
  await disposable.dispose?.();
}

/** Checks settings where they enter; a bad value names its field. */
export function checkSettings(s: DemoSettings): void {
  const ints: (keyof DemoSettings)[] = ['users', 'items', 'trainRows', 'testRows', 'batchSize', 'epochs', 'evalEvery'];
  for (const k of ints) {
    const v = s[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(s.maxSteps) || s.maxSteps < 0)
    throw new Error(`maxSteps must be a non-negative integer, got ${s.maxSteps}`);
  if (!(s.bias >= 0 && s.bias <= 5)) throw new Error(`bias must be in [0, 5], got ${s.bias}`);
  if (!(s.lr > 0 && s.lr < 1)) throw new Error(`lr must be in (0, 1), got ${s.lr}`);
  if (s.methods.length === 0) throw new Error('pick at least one method');
}

/** One training run of several methods on one simulated world; see {@link DemoSession.run}. */
export class DemoSession {
  readonly simulator: FunnelSimulator;
  readonly models = new Map<MethodName, CvrMethod>();
  private readonly train: ImpressionLog;
  private readonly test: ImpressionLog;
  private readonly testBatches: SimulatedBatch[] = [];
  private stopRequested = false;

  /** Builds the world and the models on `backend` (which becomes the active backend). */
  constructor(
    readonly settings: DemoSettings,
    readonly backend: Backend,
  ) {
    checkSettings(settings);
    this.simulator = new FunnelSimulator({
      seed: settings.seed,
      numUsers: settings.users,
      numItems: settings.items,
      ctr: settings.ctr,
      cvr: settings.cvr,
      bait: settings.bias,
    });
    // Generated in stream order: the earlier impressions train, the later ones test.
    this.train = this.simulator.generate(settings.trainRows);
    this.test = this.simulator.generate(settings.testRows);
    for (let start = 0; start < this.test.size; start += SCORE_CHUNK) {
      const idx = Int32Array.from({ length: Math.min(SCORE_CHUNK, this.test.size - start) }, (_, i) => start + i);
      this.testBatches.push(this.simulator.batch(this.test, idx));
    }
    setBackend(backend);
    for (const method of settings.methods) {
      this.models.set(
        method,
        createModel({ method, schema: this.simulator.schema, base: settings.base, seed: settings.seed }),
      );
    }
  }

  /** Asks a running {@link DemoSession.run} to stop after the current step. */
  stop(): void {
    this.stopRequested = true;
  }

  /** The oracle: the simulator's true pCTR and pCVR scored like a model's predictions. */
  oracle(): RunResult['oracle'] {
    const t = this.test;
    const m = esmmMetrics({
      click: t.click,
      conversion: t.conversion,
      pCtr: t.pCtr,
      pCvr: t.pCvr,
      potentialConversion: t.potentialConversion,
    });
    return { cvrAuc: m.cvrAuc, ctcvrAuc: m.ctcvrAuc, cvrAucEntireSpace: m.cvrAucEntireSpace ?? NaN };
  }

  /** Trains every method step by step on the same batches, yielding to the page between steps. */
  async run(events: SessionEvents = {}): Promise<RunResult> {
    const s = this.settings;
    const perEpoch = Math.ceil(this.train.size / s.batchSize);
    const totalSteps = s.maxSteps > 0 ? Math.min(s.maxSteps, perEpoch * s.epochs) : perEpoch * s.epochs;
    const optimizers = new Map<MethodName, optim.Optimizer>();
    for (const [name, m] of this.models) optimizers.set(name, new optim.Adam(m.parameters(), { lr: s.lr }));
    const losses: Record<string, number[]> = {};
    const evals: Record<string, EvalPoint[]> = {};
    for (const name of this.models.keys()) {
      losses[name] = [];
      evals[name] = [];
    }
    let step = 0;
    let samples = 0;
    let trainMs = 0;
    const stepSeconds: number[] = [];
    let lastYield = performance.now();
    let latest = new Map<MethodName, HostPredictions>();
    const evaluate = async (): Promise<void> => {
      const points = new Map<MethodName, EvalPoint>();
      latest = new Map();
      for (const [name, m] of this.models) {
        const p = await this.predictTest(m);
        latest.set(name, p);
        const metrics = this.metricsOf(p);
        const point = {
          step,
          cvrAuc: metrics.cvrAuc,
          ctcvrAuc: metrics.ctcvrAuc,
          cvrAucEntireSpace: metrics.cvrAucEntireSpace ?? NaN,
        };
        evals[name].push(point);
        points.set(name, point);
      }
      events.evaluated?.(step, points);
    };
    // Step 0: the untrained models, where every curve starts.
    await evaluate();
    outer: for (let epoch = 1; epoch <= s.epochs; epoch++) {
      const batches = this.simulator.batches(this.train, {
        batchSize: s.batchSize,
        shuffle: true,
        seed: (s.seed * 7919 + epoch) >>> 0,
      });
      for (const batch of batches) {
        if (step >= totalSteps || this.stopRequested) break outer;
        const t0 = performance.now();
        for (const [name, m] of this.models) {
          const loss = await trainStepAsync(m, optimizers.get(name)!, batch);
          if (!Number.isFinite(loss)) throw new Error(`${name}: the loss of step ${step + 1} is ${loss}`);
          losses[name].push(loss);
          events.loss?.(name, step + 1, loss);
        }
        const ms = performance.now() - t0;
        trainMs += ms;
        stepSeconds.push(ms / 1000);
        step++;
        samples += batch.size * this.models.size;
        events.progress?.({
          step,
          totalSteps,
          stepsPerSecond: (step * this.models.size) / (trainMs / 1000),
          samplesPerSecond: samples / (trainMs / 1000),
        });
        if (step % s.evalEvery === 0) await evaluate();
        // Yield often enough for the page to repaint, rarely enough not to slow training.
        if (performance.now() - lastYield > 30) {
          await yieldToPage();
          lastYield = performance.now();
        }
      }
    }
    if (evals[s.methods[0]].at(-1)?.step !== step) await evaluate();
    const final: Record<string, EsmmMetrics> = {};
    const reliability: Record<string, ReliabilityBin[]> = {};
    for (const [name, p] of latest) {
      final[name] = this.metricsOf(p);
      reliability[name] = reliabilityBins(p.pcvr, this.test.pCvr, { bins: 12 });
    }
    const b = this.backend;
    return {
      backend: b.name,
      threads: b instanceof WasmBackend ? b.threads : 1,
      pool: b instanceof WasmBackend ? b.poolStats() : null,
      steps: step,
      losses,
      evals,
      final,
      reliability,
      oracle: this.oracle(),
      stepSeconds,
      trainSeconds: trainMs / 1000,
      samplesPerSecond: samples / (trainMs / 1000),
      stopped: this.stopRequested,
    };
  }

  /** Predictions of `model` for every test impression. */
  private async predictTest(model: CvrMethod): Promise<HostPredictions> {
    const n = this.test.size;
    const out = { pctr: new Float32Array(n), pcvr: new Float32Array(n), pctcvr: new Float32Array(n) };
    let at = 0;
    for (const batch of this.testBatches) {
      const p = await model.predictAsync(batch);
      out.pctr.set(p.pctr, at);
      out.pcvr.set(p.pcvr, at);
      out.pctcvr.set(p.pctcvr, at);
      at += batch.size;
    }
    return out;
  }

  private metricsOf(p: HostPredictions): EsmmMetrics {
    const t = this.test;
    return esmmMetrics({
      click: t.click,
      conversion: t.conversion,
      pCtr: p.pctr,
      pCvr: p.pcvr,
      pCtcvr: p.pctcvr,
      potentialConversion: t.potentialConversion,
    });
  }

  /** pCTR and pCVR of `method` for every item shown to `user` (0-based), with the simulator's true rates. */
  async scoreUser(method: MethodName, user: number): Promise<UserScores> {
    const model = this.models.get(method);
    if (!model) throw new Error(`method '${method}' was not trained in this session`);
    const items = this.settings.items;
    if (!Number.isInteger(user) || user < 0 || user >= this.settings.users)
      throw new Error(`user must be an integer in [0, ${this.settings.users}), got ${user}`);
    const log = impressionsOf(user, items);
    const pctr = new Float32Array(items);
    const pcvr = new Float32Array(items);
    for (let start = 0; start < items; start += SCORE_CHUNK) {
      const idx = Int32Array.from({ length: Math.min(SCORE_CHUNK, items - start) }, (_, i) => start + i);
      const p = await model.predictAsync(this.simulator.batch(log, idx));
      pctr.set(p.pctr, start);
      pcvr.set(p.pcvr, start);
    }
    const trueCtr = new Float32Array(items);
    const trueCvr = new Float32Array(items);
    for (let i = 0; i < items; i++) {
      const r = this.simulator.trueRates(user, i, 1);
      trueCtr[i] = r.pCtr;
      trueCvr[i] = r.pCvr;
    }
    return { user, method, pctr, pcvr, trueCtr, trueCvr };
  }

  /** One method's parameters as safetensors bytes (values read back asynchronously, so webgpu works too). */
  async safetensors(method: MethodName): Promise<Blob> {
    const parts = encodeSafetensors(await this.hostParameters(method), {
      format: 'esmm-ts/model@1',
      method,
      base: this.settings.base,
      backend: this.backend.name,
    });
    return new Blob(parts as BlobPart[], { type: 'application/octet-stream' });
  }

  /**
   * One method as an ONNX model (pCTR, pCVR, pCTCVR outputs). The export traces the eager
   * forward, which reads values synchronously, so it runs on a copy of the trained weights
   * on the reference backend: the same graph and values whatever backend trained them.
   */
  async onnx(method: MethodName): Promise<Blob> {
    const host = new ReferenceBackend();
    const weights = await this.hostParameters(method, host);
    const previous = getBackend();
    setBackend(host);
    try {
      const { schema } = this.simulator;
      const copy = createModel({ method, schema, base: this.settings.base, seed: this.settings.seed });
      copy.loadStateDict(weights);
      const bytes = exportOnnx(copy, { metadata: { trained_on: this.backend.name } });
      return new Blob([bytes as BlobPart], { type: 'application/octet-stream' });
    } finally {
      setBackend(previous);
    }
  }

  /** The parameters of one method, copied to the host (on `host`, a reference backend by default). */
  private async hostParameters(method: MethodName, host = new ReferenceBackend()): Promise<Record<string, Tensor>> {
    const model = this.models.get(method);
    if (!model) throw new Error(`method '${method}' was not trained in this session`);
    const tensors: Record<string, Tensor> = {};
    for (const [name, t] of model.namedParameters()) {
      tensors[name] = Tensor.fromArray(await t.data(), t.shape, { backend: host, dtype: t.dtype });
    }
    return tensors;
  }
}

/** A user's scores over every item. */
export interface UserScores {
  user: number;
  method: MethodName;
  pctr: Float32Array;
  pcvr: Float32Array;
  /** The simulator's true rates of the same impressions (context 1). */
  trueCtr: Float32Array;
  trueCvr: Float32Array;
}

/** One ranked item. */
export interface RankedItem {
  item: number;
  pctr: number;
  pcvr: number;
  score: number;
  trueCtcvr: number;
}

/** The top `k` items by pCTR^a · pCVR^b. */
export function topK(scores: UserScores, a: number, b: number, k: number): RankedItem[] {
  const n = scores.pctr.length;
  const value = new Float64Array(n);
  for (let i = 0; i < n; i++) value[i] = a * Math.log(scores.pctr[i]) + b * Math.log(scores.pcvr[i]);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => value[y] - value[x] || x - y);
  return order.slice(0, k).map((i) => ({
    item: i,
    pctr: scores.pctr[i],
    pcvr: scores.pcvr[i],
    score: Math.exp(value[i]),
    trueCtcvr: scores.trueCtr[i] * scores.trueCvr[i],
  }));
}

/** Every item shown once to `user`, as an impression log without outcomes. */
function impressionsOf(user: number, items: number): ImpressionLog {
  const zeros = (): Float32Array => new Float32Array(items);
  return {
    size: items,
    user: new Int32Array(items).fill(user),
    item: Int32Array.from({ length: items }, (_, i) => i),
    context: new Int32Array(items).fill(1),
    session: new Int32Array(items),
    click: zeros(),
    conversion: zeros(),
    potentialConversion: zeros(),
    pCtr: zeros(),
    pCvr: zeros(),
  };
}

/**
 * Lets the page handle input and repaint (a macrotask, so timers and rendering get their turn).
 * The port is closed once it has answered: in Node an open port with a listener keeps the
 * process alive after training ends.
 */
function yieldToPage(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}
