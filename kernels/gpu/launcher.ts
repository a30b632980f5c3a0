/**
 * The plumbing both gpu.js backends share: compiled kernels cached per key and loop class,
 * the check that gpu.js did not silently move a kernel to its cpu fallback, the one-element
 * placeholder that stands in for empty buffers, and stepping a {@link Plan}, either at once
 * or awaiting each launch.
 *
 * Storages are resolved to their handles at the moment of each launch; results stay
 * device-resident and nothing here reads them back. Results a plan computes but does not
 * keep (softmax row statistics, or all of them when a launch fails) are released when the
 * plan ends.
 */
import type { Storage } from '../backend.js';
import {
  createGpu,
  isDeviceBuffer,
  runsOn,
  type CompiledKernel,
  type DeviceBuffer,
  type DeviceTexture,
  type GpuInstance,
  type GpuMode,
  type KernelArg,
} from './gpujs.js';
import { loopClass } from './launch-args.js';
import { Temp, type Launch, type Plan, type PlanArg, type Replacement } from './plans.js';
import { HELPERS, SOURCES } from './sources.js';

/** What a kernel returns: host arrays on cpu/webasm, textures on GL, buffers on webgpu. */
export type Handle = Float32Array | DeviceTexture;

/** A storage as the launcher sees it: the handle it currently holds (null when empty on a device). */
export interface HandleSlot<H extends Handle> {
  /** Current contents, replaced wholesale by each kernel that writes the storage. */
  handle: H | null;
}

/** How a backend plugs into a {@link Launcher}. */
export interface LauncherOptions<H extends Handle> {
  /** The gpu.js instance kernels compile on. */
  readonly gpu: GpuInstance;
  /** The mode every kernel must really run on. */
  readonly mode: Exclude<GpuMode, 'auto'>;
  /** What a zero-length launch yields without running. */
  readonly empty: H | null;
  /** The backend's own storage behind `s`; throws for another backend's. */
  own(s: Storage): HandleSlot<H>;
  /** `result` as this mode's handle; throws when kernel `key` returned something else. */
  accept(result: unknown, key: string): H;
}

/** The launcher of a webgpu backend: kernels on a fresh gpu.js webgpu instance, each returning a device buffer. */
export function webgpuLauncher(own: (s: Storage) => HandleSlot<DeviceBuffer>): Launcher<DeviceBuffer> {
  return new Launcher<DeviceBuffer>({
    gpu: createGpu('webgpu'),
    mode: 'webgpu',
    empty: null,
    own,
    accept: (result, key) => {
      if (!isDeviceBuffer(result)) throw new Error(`gpu backend: kernel '${key}' returned no webgpu buffer`);
      return result;
    },
  });
}

/** The first `size` values of a webgpu buffer, copied to the host; zeros for an empty (null) buffer. */
export async function readDeviceBuffer(handle: DeviceBuffer | null, size: number): Promise<Float32Array> {
  if (handle === null) return new Float32Array(size);
  const values = await handle.toArray();
  if (!(values instanceof Float32Array)) throw new Error('gpu backend: buffer read back as a non-float32 array');
  return values.length === size ? values.slice() : values.slice(0, size);
}

/** A compiled, sized kernel and its arguments, ready to be called. */
export interface ReadyLaunch {
  /** Cache key of the launch, for error messages. */
  readonly key: string;
  /** The kernel, already sized to the launch's output. */
  readonly kernel: CompiledKernel;
  /** Arguments with storages and earlier results turned into handles. */
  readonly args: readonly KernelArg[];
}

/** Uploads a one-element buffer: stands in for empty inputs, whose values kernels never read. */
const PLACEHOLDER: Omit<Launch, 'args'> = { key: 'upload', source: SOURCES.upload, size: 1, loopBound: 0 };

function release(h: Handle | null): void {
  if (h !== null && !(h instanceof Float32Array)) h.delete();
}

/** Compiles, launches and checks gpu.js kernels for one backend, and steps its plans. */
export class Launcher<H extends Handle> {
  /** Kernel launches so far, for tests and benchmarks. */
  launches = 0;
  /** Stand-in for empty device buffers, made on first need. */
  placeholder: H | null = null;
  private readonly kernels = new Map<string, CompiledKernel>();

  constructor(readonly options: LauncherOptions<H>) {
    for (const h of HELPERS) options.gpu.addFunction(h);
  }

  /** Runs `plan` to its end, each kernel call returning its result directly. */
  runSync(plan: Plan): void {
    const steps = new Steps(this, plan);
    try {
      let l = steps.next(null);
      while (l !== null) l = steps.next(this.finish(l, l.kernel(...l.args)));
    } finally {
      steps.close();
    }
  }

  /** Runs `plan` to its end, awaiting each kernel call before the next is made. */
  async runAsync(plan: Plan): Promise<void> {
    const steps = new Steps(this, plan);
    try {
      let l = steps.next(null);
      while (l !== null) l = steps.next(this.finish(l, await l.kernel(...l.args)));
    } finally {
      steps.close();
    }
  }

  /** The kernel for `l`, compiled on first use and sized to its output. */
  ready(l: Omit<Launch, 'args'>, args: readonly KernelArg[]): ReadyLaunch {
    const key = `${l.key}|${loopClass(l.loopBound)}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = this.options.gpu.createKernel(l.source, {
        output: [1],
        pipeline: true,
        immutable: true,
        dynamicOutput: true,
        dynamicArguments: true,
        loopMaxIterations: loopClass(l.loopBound),
        precision: 'single',
        // GL would otherwise choose lowp/mediump from the texture size, too coarse for index math.
        tactic: 'precision',
      });
      this.kernels.set(key, k);
    }
    k.setOutput([l.size]);
    return { key: l.key, kernel: k, args };
  }

  /** Counts a finished launch and checks where it ran and what it returned. */
  private finish(l: ReadyLaunch, result: unknown): H {
    this.launches++;
    const { mode } = this.options;
    if (!runsOn(l.kernel, mode)) {
      const ran = `${l.kernel.kernel.constructor.name ?? '?'} (${l.kernel.kernel.constructor.mode ?? '?'})`;
      const reason = l.kernel.kernel.fallbackReason ?? 'unknown reason';
      throw new Error(`gpu backend: kernel '${l.key}' ran on ${ran} instead of '${mode}': ${reason}`);
    }
    return this.options.accept(result, l.key);
  }

  /** Replaces the contents of `out`, releasing what it held. */
  assign(out: Storage, handle: H | null): void {
    const slot = this.options.own(out);
    const old = slot.handle;
    slot.handle = handle;
    if (old !== handle) release(old);
  }

  /** Releases the placeholder, every compiled kernel and the gpu.js instance. */
  dispose(): void {
    release(this.placeholder);
    this.placeholder = null;
    for (const k of this.kernels.values()) k.destroy?.();
    this.kernels.clear();
    this.options.gpu.destroy();
  }
}

/** One plan being stepped: the results of its launches so far, and a launch held back for the placeholder. */
class Steps<H extends Handle> {
  private readonly results: (H | null)[] = [];
  private readonly kept = new Set<number>();
  private started = false;
  private held: Launch | null = null;

  constructor(
    private readonly launcher: Launcher<H>,
    private readonly plan: Plan,
  ) {}

  /** Takes the result of the last launch returned; gives the next one, or null once the plan is done. */
  next(result: H | null): ReadyLaunch | null {
    let step: IteratorResult<Launch, readonly Replacement[]>;
    if (this.held !== null) {
      if (result === null) throw new Error('gpu backend: placeholder launch produced nothing');
      this.launcher.placeholder = result;
      step = { done: false, value: this.held };
      this.held = null;
    } else {
      step = this.started ? this.plan.next(this.record(result)) : this.plan.next();
      this.started = true;
    }
    for (; !step.done; step = this.plan.next(this.record(this.launcher.options.empty))) {
      const args = step.value.args.map((a) => this.resolve(a));
      if (step.value.size === 0) continue;
      if (args.every((a): a is KernelArg => a !== null)) return this.launcher.ready(step.value, args);
      this.held = step.value;
      return this.launcher.ready(PLACEHOLDER, [new Float32Array(1)]);
    }
    for (const [out, temp] of step.value) {
      if (temp !== null) this.kept.add(temp.index);
      this.launcher.assign(out, temp === null ? null : this.results[temp.index]);
    }
    return null;
  }

  /** Releases the results the plan did not keep. */
  close(): void {
    this.results.forEach((h, i) => {
      if (!this.kept.has(i)) release(h);
    });
  }

  private record(result: H | null): Temp | null {
    this.results.push(result);
    return result === null ? null : new Temp(this.results.length - 1);
  }

  /** A kernel argument for `a`; null for an empty storage while there is no placeholder yet. */
  private resolve(a: PlanArg): KernelArg | null {
    if (typeof a === 'number' || a instanceof Float32Array) return a;
    if (a instanceof Temp) {
      const h = this.results[a.index];
      if (h === null) throw new Error('gpu backend: a plan passed an empty result to a kernel');
      return h;
    }
    const h = this.launcher.options.own(a).handle;
    // Only empty device buffers lack a handle; a placeholder of the same kind keeps argument types uniform.
    if (h === null) return this.launcher.placeholder;
    return h instanceof Float32Array && h.length === 0 ? new Float32Array(1) : h;
  }
}
