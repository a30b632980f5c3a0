/**
 * The worker pool behind a multi-threaded wasm backend.
 *
 * The engine is synchronous, so a call cannot await a worker. Instead every worker
 * instantiates the kernel module over the arena's shared memory and sleeps in
 * `Atomics.wait` on a control block that lives in that memory. To run a kernel in
 * parallel the calling thread writes one argument row per chunk into the block, bumps a
 * sequence number and wakes the workers; then every thread, the caller included, claims
 * chunks with `Atomics.add` until none are left, and the caller waits until all claimed
 * chunks are done. Claiming (rather than assigning chunks to threads) keeps the caller
 * from ever waiting on a worker that has not started yet or that lost its core to
 * another process; which thread computes a chunk never changes its result.
 *
 * Memory growth needs no message either: only the calling thread allocates, between
 * jobs, and a grown shared memory is seen by every instance at once. The control block
 * sits below any later growth, so the workers' views of it stay valid.
 */
import { MATH_IMPORTS } from './kernels.js';
import { MAX_KERNEL_ARGS } from './layouts.js';

/** Int32 slots of the control block. */
const SEQ = 0;
const NEXT = 1;
const DONE = 2;
const NCHUNK = 3;
const FN = 4;
const STOP = 5;
const ERROR = 6;
/** Workers that have instantiated the module and wait for jobs. */
const READY = 7;
/** Chunks the workers (not the calling thread) have computed, for tests and benchmarks. */
const WORKER_CHUNKS = 8;
/** Byte offset of the argument rows inside the control block. */
const ARGS_AT = 64;

/** Most chunks one job may have. */
export const MAX_CHUNKS = 64;
/** Arguments per chunk row (every kernel takes at most this many; `checkLayouts` holds layouts to it). */
export const MAX_ARGS = MAX_KERNEL_ARGS;
/** Bytes of the control block. */
export const CONTROL_BYTES = ARGS_AT + MAX_CHUNKS * MAX_ARGS * 8;
/**
 * NEXT holds this between jobs, so a late worker's claim always fails while the next
 * job's arguments are being written.
 */
const IDLE = 1 << 30;
/**
 * Milliseconds a thread polls a control slot before it sleeps in `Atomics.wait`. A wake-up
 * costs tens of µs (more in a virtual machine), paid twice per job when both sides sleep, and a
 * training step runs a parallel job every millisecond or so with serial work in between; a
 * worker that polls through those gaps takes its first chunk at once. OpenMP runtimes spin for
 * the same reason (libgomp's default spin count, Intel's 200 ms block time). After a step the
 * workers sleep again, so an idle backend holds no core.
 */
export const SPIN_MS = 1;
/** Polls between two reads of the clock while spinning. */
const POLLS_PER_CLOCK = 256;

/** Counters of the wasm backend's worker pool. */
export interface PoolStats {
  /** Worker threads started (the calling thread not counted). */
  workers: number;
  /** Workers that instantiated the kernels and wait for jobs. */
  ready: number;
  /** Chunks computed by workers so far. */
  workerChunks: number;
}

/** Slow jobs in a row after which the pool pauses, and the first and longest pause (in jobs). */
const STRIKES = 4;
const MIN_PAUSE = 32;
const MAX_PAUSE = 4096;

/**
 * Whether a parallel job lost time to its workers (all times in ms): it ran no faster than the
 * serial estimate (`serial`, the caller's time per chunk times the chunks) *and* the caller sat
 * waiting for workers (`waited`) longer than one of its own chunks took (`chunkMs`), which is a
 * worker that claimed work and then lost its core. A worker that woke too late to claim anything
 * cost nothing, since the caller computed every chunk itself, so it is no reason to stop offering
 * work: counting it made the pool pause on an idle machine whenever a sleeping worker woke slowly.
 */
export function jobLost(elapsed: number, serial: number, waited: number, chunkMs: number): boolean {
  return elapsed >= 0.85 * serial && waited > chunkMs;
}

type Kernel = (...args: number[]) => void;

/** A started worker, as the pool uses it. */
interface WorkerHandle {
  terminate(): void;
}

/** Starts one worker running {@link workerSource} over `data`. */
type Spawn = (data: WorkerData) => WorkerHandle;

/** What a worker is given: the kernel module, the shared arena, and where its control block is. */
interface WorkerData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  base: number;
  names: string[];
  math: string[];
}

/** The `Worker` constructor and options of `node:worker_threads` that the pool uses. */
interface NodeWorker {
  unref(): void;
  terminate(): Promise<number>;
  on(event: 'error', listener: (err: unknown) => void): void;
}
type NodeWorkerCtor = new (code: string, options: { eval: true; workerData: unknown }) => NodeWorker;

/** The browser's `Worker` and `Blob`, in the shape the pool uses. */
interface BrowserGlobals {
  Worker?: new (url: string) => { postMessage(data: unknown): void; terminate(): void; onerror: unknown };
  Blob?: new (parts: string[], options: { type: string }) => object;
  URL?: { createObjectURL(blob: object): string };
  crossOriginIsolated?: boolean;
}

/** How this runtime starts workers: Node's worker threads, a browser's (cross-origin isolated) Workers, or none. */
function spawner(): Spawn | null {
  const g = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } } & BrowserGlobals;
  const mod = g.process?.getBuiltinModule?.('node:worker_threads') as { Worker?: NodeWorkerCtor } | undefined;
  const NodeWorkerClass = mod?.Worker;
  if (NodeWorkerClass) {
    return (workerData) => {
      const w = new NodeWorkerClass(workerSource('node'), { eval: true, workerData });
      // A failed worker only means fewer helpers: the caller claims every chunk itself.
      w.on('error', () => undefined);
      w.unref();
      return { terminate: () => void w.terminate().catch(() => undefined) };
    };
  }
  // Shared wasm memory reaches a browser worker only on a cross-origin isolated page (COOP + COEP).
  const { Worker: BrowserWorker, Blob: BlobClass, URL: Url } = g;
  if (BrowserWorker && BlobClass && Url && g.crossOriginIsolated === true) {
    let url: string | null = null;
    return (workerData) => {
      url ??= Url.createObjectURL(new BlobClass([workerSource('browser')], { type: 'text/javascript' }));
      const w = new BrowserWorker(url);
      w.onerror = () => undefined;
      w.postMessage(workerData);
      return { terminate: () => w.terminate() };
    };
  }
  return null;
}

/** Whether this runtime can run a pool (Node worker threads, or browser Workers on an isolated page, with shared memory). */
export function poolSupported(): boolean {
  return spawner() !== null && typeof SharedArrayBuffer !== 'undefined' && typeof Atomics.wait === 'function';
}

/** Whether this thread may block in `Atomics.wait` (a browser's main thread may not: it spins instead). */
function canBlock(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

// The worker's whole program. It is evaluated from a string so that it needs no file of
// its own (the same code runs from sources, from the compiled package and from bundles).
// Node passes its data as workerData, a browser as the first message.
const WORKER_BODY = `
const { module, memory, base, names, math } = workerData;
const mathImports = {};
for (const name of math) mathImports[name] = Math[name];
const inst = new WebAssembly.Instance(module, { env: { memory }, math: mathImports });
const fns = names.map((n) => inst.exports[n]);
const ctl = new Int32Array(memory.buffer, base, ${ARGS_AT / 4});
const args = new Float64Array(memory.buffer, base + ${ARGS_AT}, ${MAX_CHUNKS * MAX_ARGS});
let seen = Atomics.load(ctl, ${SEQ});
Atomics.add(ctl, ${READY}, 1);
for (;;) {
  const spinEnd = performance.now() + ${SPIN_MS};
  let polls = 0;
  while (Atomics.load(ctl, ${SEQ}) === seen) {
    if (++polls % ${POLLS_PER_CLOCK} !== 0 || performance.now() < spinEnd) continue;
    Atomics.wait(ctl, ${SEQ}, seen);
  }
  seen = Atomics.load(ctl, ${SEQ});
  if (Atomics.load(ctl, ${STOP}) !== 0) break;
  for (;;) {
    const c = Atomics.add(ctl, ${NEXT}, 1);
    const n = Atomics.load(ctl, ${NCHUNK});
    if (c >= n) break;
    try {
      const a = c * ${MAX_ARGS};
      fns[Atomics.load(ctl, ${FN})](${Array.from({ length: MAX_ARGS }, (_, i) => `args[a + ${i}]`).join(', ')});
    } catch (e) {
      Atomics.store(ctl, ${ERROR}, 1);
    }
    Atomics.add(ctl, ${WORKER_CHUNKS}, 1);
    if (Atomics.add(ctl, ${DONE}, 1) + 1 === n) Atomics.notify(ctl, ${DONE});
  }
}
`;

function workerSource(runtime: 'node' | 'browser'): string {
  if (runtime === 'node') return `const { workerData } = require('node:worker_threads');\n${WORKER_BODY}`;
  return `self.onmessage = (event) => {\nself.onmessage = null;\nconst workerData = event.data;\n${WORKER_BODY}\n};`;
}

/** Terminates a pool's workers; held by the finalizer so that it never references the backend. */
class Shutdown {
  constructor(
    private readonly ctl: Int32Array,
    readonly workers: WorkerHandle[],
  ) {}

  run(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctl, STOP, 1);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }
}

const finalizer = new FinalizationRegistry<Shutdown>((s) => s.run());

/**
 * Worker threads sharing one arena memory. Workers start on the first parallel job, so
 * a backend that only ever runs small kernels never spawns any.
 */
export class ThreadPool {
  /** Kernel names in the order the job descriptor refers to them. */
  private readonly names: string[];
  private readonly fns: Kernel[];
  private readonly ctl: Int32Array;
  /** Argument rows, one per chunk: write them, then call {@link run}. */
  readonly args: Float64Array;
  private readonly shutdown: Shutdown;
  private started = false;
  /** Whether the calling thread may sleep in `Atomics.wait` while workers finish. */
  private readonly blocks = canBlock();
  /** Per kernel: consecutive jobs that ran no faster than serial code would have. */
  private readonly strikes: Int32Array;
  /** Per kernel: calls still to run serially before the pool is tried again, and the next such pause. */
  private readonly pause: Int32Array;
  private readonly nextPause: Int32Array;

  /**
   * @param threads threads that compute, the calling thread included.
   * @param base byte offset of a {@link CONTROL_BYTES} block of the shared memory.
   * @param adaptive pause kernels whose parallel runs do not pay (see {@link useful}).
   */
  constructor(
    readonly threads: number,
    private readonly memory: WebAssembly.Memory,
    private readonly module: WebAssembly.Module,
    exports: Record<string, unknown>,
    private readonly base: number,
    private readonly adaptive = true,
  ) {
    this.names = Object.keys(exports).filter((n) => typeof exports[n] === 'function');
    this.fns = this.names.map((n) => exports[n] as Kernel);
    this.strikes = new Int32Array(this.names.length);
    this.pause = new Int32Array(this.names.length);
    this.nextPause = new Int32Array(this.names.length).fill(MIN_PAUSE);
    this.ctl = new Int32Array(memory.buffer, base, ARGS_AT / 4);
    this.args = new Float64Array(memory.buffer, base + ARGS_AT, MAX_CHUNKS * MAX_ARGS);
    this.ctl.fill(0);
    Atomics.store(this.ctl, NEXT, IDLE);
    this.shutdown = new Shutdown(this.ctl, []);
  }

  /** Index of an exported kernel, for {@link run}. */
  fn(name: string): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`wasm pool: no kernel ${name}`);
    return i;
  }

  /**
   * Whether the next large kernel should use the pool. When the cores are busy with other
   * work, a worker that wakes late or loses its core mid-chunk makes parallel jobs slower
   * than serial ones; after a few such jobs the pool pauses for a while (longer each time
   * it does not pay on return), and the caller runs kernels serially. Either way results
   * are the same, since chunking never changes them. Kept per kernel, so that one that
   * never gains does not hold back the others.
   */
  useful(fn: number): boolean {
    if (!this.adaptive || this.pause[fn] === 0) return true;
    this.pause[fn]--;
    return false;
  }

  /** Record how a job of kernel `fn` went ({@link jobLost}) and adapt its pause. */
  private judge(fn: number, elapsed: number, serial: number, waited: number, chunkMs: number): void {
    if (!jobLost(elapsed, serial, waited, chunkMs)) {
      this.strikes[fn] = 0;
      this.nextPause[fn] = MIN_PAUSE;
      return;
    }
    if (++this.strikes[fn] < STRIKES) return;
    this.strikes[fn] = 0;
    this.pause[fn] = this.nextPause[fn];
    this.nextPause[fn] = Math.min(MAX_PAUSE, this.nextPause[fn] * 2);
  }

  /** Number of chunks to cut `units` of work into (at least 1, at most {@link MAX_CHUNKS}). */
  chunks(units: number, perThread = 4): number {
    return Math.max(1, Math.min(units, this.threads * perThread, MAX_CHUNKS));
  }

  private start(owner: object): void {
    this.started = true;
    const spawn = spawner();
    if (!spawn) return;
    const workerData: WorkerData = {
      module: this.module,
      memory: this.memory,
      base: this.base,
      names: this.names,
      math: [...MATH_IMPORTS],
    };
    try {
      for (let t = 1; t < this.threads; t++) this.shutdown.workers.push(spawn(workerData));
    } catch {
      // A worker that cannot start only means fewer helpers: run with those that did.
    }
    finalizer.register(owner, this.shutdown, this);
  }

  /**
   * Run kernel `fn` once per chunk with the argument rows `0..chunks` of {@link args},
   * spread over the threads; returns when every chunk is done. `owner` is the backend
   * whose collection should stop the workers.
   */
  run(fn: number, chunks: number, owner: object): void {
    if (!this.started) this.start(owner);
    const ctl = this.ctl;
    const args = this.args;
    const kernel = this.fns[fn];
    const t0 = performance.now();
    let own = 0;
    let ownTime = 0;
    Atomics.store(ctl, FN, fn);
    Atomics.store(ctl, NCHUNK, chunks);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, ERROR, 0);
    Atomics.store(ctl, NEXT, 0);
    Atomics.add(ctl, SEQ, 1);
    if (this.shutdown.workers.length > 0) Atomics.notify(ctl, SEQ);
    let failure: unknown = null;
    for (;;) {
      const c = Atomics.add(ctl, NEXT, 1);
      if (c >= chunks) break;
      const a = c * MAX_ARGS;
      const c0 = performance.now();
      try {
        kernel(
          args[a],
          args[a + 1],
          args[a + 2],
          args[a + 3],
          args[a + 4],
          args[a + 5],
          args[a + 6],
          args[a + 7],
          args[a + 8],
          args[a + 9],
          args[a + 10],
          args[a + 11],
          args[a + 12],
          args[a + 13],
          args[a + 14],
          args[a + 15],
          args[a + 16],
          args[a + 17],
          args[a + 18],
          args[a + 19],
        );
      } catch (e) {
        failure = e;
      }
      ownTime += performance.now() - c0;
      own++;
      Atomics.add(ctl, DONE, 1);
    }
    const w0 = performance.now();
    const spinEnd = w0 + SPIN_MS;
    let polls = 0;
    for (;;) {
      const done = Atomics.load(ctl, DONE);
      if (done >= chunks) break;
      if (++polls % POLLS_PER_CLOCK !== 0 || performance.now() < spinEnd) continue;
      if (this.blocks) Atomics.wait(ctl, DONE, done);
    }
    Atomics.store(ctl, NEXT, IDLE);
    if (own > 0 && this.shutdown.workers.length > 0) {
      const end = performance.now();
      this.judge(fn, end - t0, (ownTime * chunks) / own, end - w0, ownTime / own);
    }
    if (failure !== null) throw failure;
    if (Atomics.load(ctl, ERROR) !== 0) throw new Error('wasm pool: a kernel failed in a worker thread');
  }

  /** Start the workers if needed and resolve once all are ready for jobs (or after `timeoutMs`). */
  async ready(owner: object, timeoutMs = 10_000): Promise<void> {
    if (!this.started) this.start(owner);
    const end = Date.now() + timeoutMs;
    while (Atomics.load(this.ctl, READY) < this.shutdown.workers.length && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Workers running, workers ready, and chunks computed by workers so far. */
  stats(): PoolStats {
    return {
      workers: this.shutdown.workers.length,
      ready: Atomics.load(this.ctl, READY),
      workerChunks: Atomics.load(this.ctl, WORKER_CHUNKS),
    };
  }

  /** Stop the workers (idempotent); the pool then runs every chunk on the calling thread. */
  dispose(): void {
    finalizer.unregister(this);
    this.shutdown.run();
  }
}
