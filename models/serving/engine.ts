/**
 * Scoring engines behind the server: the esmm-ts eager model, or ONNX Runtime over an exported
 * graph. ONNX Runtime is an optional peer dependency, imported only when asked for.
 */
import type { Batch } from '../schema.js';
import type { CvrMethod, HostPredictions } from '../methods/method.js';
import { importOptionalPeer } from '../../kernels/optional-peer.js';
import { toOnnxFeeds } from './feeds.js';
import type { Schema } from '../schema.js';

/** Which engine scores. */
export type EngineName = 'esmm-ts' | 'onnxruntime';

/** Scores batches; one call at a time. */
export interface ScoringEngine {
  readonly name: EngineName;
  score(batch: Batch): Promise<HostPredictions>;
  close(): Promise<void>;
}

/** The esmm-ts model itself (synchronous; wrapped in a promise). */
export class EagerEngine implements ScoringEngine {
  readonly name = 'esmm-ts';
  constructor(readonly method: CvrMethod) {
    method.eval();
  }
  async score(batch: Batch): Promise<HostPredictions> {
    return this.method.predict(batch);
  }
  async close(): Promise<void> {}
}

interface OrtTensor {
  readonly data: unknown;
}
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
/** The part of `onnxruntime-node` used here. */
export interface OnnxRuntimeModule {
  InferenceSession: { create(bytes: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'int64' | 'float32', data: BigInt64Array | Float32Array, dims: readonly number[]) => unknown;
}

let ortModule: Promise<OnnxRuntimeModule> | null = null;
/** A variable, so that bundlers leave ONNX Runtime (Node-only) out of browser bundles of the package. */
const ORT_PACKAGE = 'onnxruntime-node';

/**
 * Import `onnxruntime-node` on first use; when it is absent the error says `npm install onnxruntime-node`
 * (with `onnxruntime-node-install=skip` in `.npmrc` it installs from the npm registry alone).
 */
export function loadOnnxRuntime(): Promise<OnnxRuntimeModule> {
  ortModule ??= importOptionalPeer(() => import(/* @vite-ignore */ ORT_PACKAGE) as Promise<unknown>, {
    peer: 'onnxruntime-node',
    feature: 'the ONNX Runtime engine',
  }).then(
    (m) => ((m as { default?: OnnxRuntimeModule }).default ?? m) as unknown as OnnxRuntimeModule,
    (e: unknown) => {
      // A later call tries again (e.g. after the package was installed).
      ortModule = null;
      throw e;
    },
  );
  return ortModule;
}

/** Options of {@link OnnxRuntimeEngine.create}. */
export interface OnnxRuntimeEngineOptions {
  /** Threads of ONNX Runtime's intra-op pool (default: its own choice). */
  threads?: number;
}

/** An exported graph scored by ONNX Runtime's CPU provider. */
export class OnnxRuntimeEngine implements ScoringEngine {
  readonly name = 'onnxruntime';
  private constructor(
    private readonly ort: OnnxRuntimeModule,
    private readonly session: OrtSession,
    private readonly schema: Schema,
  ) {}

  static async create(
    bytes: Uint8Array,
    schema: Schema,
    options: OnnxRuntimeEngineOptions = {},
  ): Promise<OnnxRuntimeEngine> {
    const ort = await loadOnnxRuntime();
    const sessionOptions: Record<string, unknown> = { graphOptimizationLevel: 'all' };
    if (options.threads !== undefined) sessionOptions.intraOpNumThreads = options.threads;
    const session = await ort.InferenceSession.create(bytes, sessionOptions);
    return new OnnxRuntimeEngine(ort, session, schema);
  }

  async score(batch: Batch): Promise<HostPredictions> {
    const feeds: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(toOnnxFeeds(this.schema, batch)))
      feeds[name] = new this.ort.Tensor(f.type, f.data, f.dims);
    const out = await this.session.run(feeds);
    const get = (name: string): Float32Array => {
      const data = out[name]?.data;
      if (!(data instanceof Float32Array)) throw new Error(`ONNX Runtime returned no float output '${name}'`);
      return data;
    };
    return { pctr: get('pctr'), pcvr: get('pcvr'), pctcvr: get('pctcvr') };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
