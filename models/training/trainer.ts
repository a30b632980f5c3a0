/**
 * The Trainer: epochs over a batch source, any method of Table 2, evaluation each
 * epoch with globally computed metrics, early stopping, progress on a terminal,
 * a JSONL log, and checkpoints that resume to the same result as an uninterrupted run.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  add,
  compileStep,
  COMPILE_STEP_DEFAULTS,
  noGrad,
  optim,
  Tensor,
  type CompiledStep,
  type StepMode,
} from '../../core/index.js';
import { CheckpointError, openCheckpoint, saveCheckpoint, type CheckpointFile } from '../checkpoint.js';
import { EsmmAccumulator, formatAuc, type EsmmMetrics } from '../metrics.js';
import { NonFiniteStepError, trainStep, type CvrMethod } from '../methods/method.js';
import type { Batch } from '../schema.js';
import { INSTEAD, requireNode } from '../node-only.js';

/** Batches for one epoch; called once per epoch with its number, so shuffling can be seeded by epoch. */
export interface BatchSource {
  /** The batches of epoch `epoch` (1-based; 0 for evaluation), in the order to train on. */
  batches(epoch: number): Iterable<Batch> | AsyncIterable<Batch>;
  /** Rows per epoch, when known (drives the progress bar). */
  rows?: number;
  /**
   * Called with each training batch once its step is done and nothing reads it any more, so a
   * source can reuse the batch's buffers (see `parquetSource`).
   */
  recycle?(batch: Batch): void;
}

/** Extra columns a batch may carry: simulator ground truth and user ids, used by evaluation when present. */
interface EvalColumns {
  potentialConversion?: Float32Array;
  userIds?: Int32Array;
}

/** Metrics that are better when smaller; every other metric is maximised. */
const LOWER_IS_BETTER: ReadonlySet<string> = new Set(['ctrLogloss', 'cvrLogloss', 'ctcvrLogloss']);

/** A metric the trainer can monitor for early stopping. */
export type MonitoredMetric =
  'ctrAuc' | 'cvrAuc' | 'ctcvrAuc' | 'cvrAucEntireSpace' | 'ctrLogloss' | 'cvrLogloss' | 'ctcvrLogloss';

/** How progress is shown: a redrawn bar, plain lines, or nothing. `auto` picks a bar on a terminal. */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

/**
 * Defaults of the Trainer, which the CLI, `runTable2` and the reports use too. The paper states Adam
 * but no learning rate; 2e-3 is the rate of every committed Table 2 and practice run (it learns the
 * simulated quick start in one epoch), so the API and the command line train the same model.
 */
export const TRAINER_DEFAULTS = {
  epochs: 1,
  lr: 2e-3,
  optimizer: 'adam' as 'adam' | 'sgd',
  logEvery: 50,
  monitor: 'ctcvrAuc' as MonitoredMetric,
  progress: 'auto' as ProgressMode,
  /** Replay a recorded plan for steps of repeating shapes (see `compileStep`); `eager` runs every op. */
  stepMode: COMPILE_STEP_DEFAULTS.mode as StepMode,
} as const;

/**
 * Where progress is written: `process.stderr` or any stream like it. Typed here rather than as
 * Node's `WriteStream` so the package's types hold without @types/node (e.g. in a browser app).
 */
export interface ProgressStream {
  /** Write `text` as it is (no newline added). */
  write(text: string): unknown;
  /** A redrawn bar is used on a terminal only. */
  readonly isTTY?: boolean;
}

/** stderr under Node; elsewhere (browsers) progress goes to the console, one line per write. */
function defaultStream(): ProgressStream {
  const proc = (globalThis as { process?: { stderr?: ProgressStream } }).process;
  return proc?.stderr ?? { write: (text: string) => console.log(text.replace(/^\r|\n$/g, '')) };
}

/** Trainer settings (defaults in {@link TRAINER_DEFAULTS}). */
export interface TrainerOptions {
  /** Epochs to run in total (a resumed trainer continues up to this number). */
  epochs?: number;
  /** Learning rate. */
  lr?: number;
  /** `adam` (sparse rows updated lazily) or `sgd`. */
  optimizer?: 'adam' | 'sgd';
  /** SGD momentum. */
  momentum?: number;
  /** L2 weight decay. */
  weightDecay?: number;
  /** Clip the global gradient norm to this value. */
  clipNorm?: number;
  /** Stop after this many epochs without improvement of `monitor` on the validation source. */
  patience?: number;
  /** The validation metric for early stopping and the best epoch. */
  monitor?: MonitoredMetric;
  /** Steps between loss read-backs for the progress display (a read-back synchronises a device). */
  logEvery?: number;
  /** Progress display. */
  progress?: ProgressMode;
  /** Append one JSON object per log event to this file. */
  jsonlPath?: string;
  /** Save a checkpoint here after every epoch. */
  checkpointPath?: string;
  /** Where progress goes (default stderr). */
  stream?: ProgressStream;
  /**
   * Non-finite steps (NaN or ±Inf loss or gradient norm) to skip over the trainer's life, as
   * PyTorch's AMP skips an overflowing step: the update is not applied and training goes on.
   * One more stops training with a {@link DivergenceError}. Default 0: the first one stops it.
   */
  skipNonFiniteSteps?: number;
  /**
   * `captured` (default): steps of repeating shapes replay a plan recorded from an eager step
   * (bit-identical results, less host work); `eager`: every step builds and walks its graph.
   */
  stepMode?: StepMode;
}

/**
 * Training stopped because a step's loss or gradient norm was not finite (or a parameter
 * became so): names the epoch, the step and the first non-finite parameter. The bad update
 * was never applied and no checkpoint was written from it; the last one on disk is unchanged.
 */
export class DivergenceError extends Error {
  constructor(
    readonly epoch: number,
    readonly step: number,
    /** The first parameter with a non-finite gradient or value, if one was found. */
    readonly parameter: string | undefined,
    detail: string,
  ) {
    super(
      `training diverged at epoch ${epoch}, step ${step}: ${detail}. No checkpoint was written from this state` +
        ' (the last one, if any, is unchanged); try a lower learning rate or clipNorm',
    );
    this.name = 'DivergenceError';
  }
}

/** What one epoch did. */
export interface EpochRecord {
  epoch: number;
  /** Mean training loss over every step of the epoch. */
  trainLoss: number;
  steps: number;
  samples: number;
  seconds: number;
  samplesPerSecond: number;
  /** Validation metrics, when a validation source was given. */
  metrics?: EsmmMetrics;
}

/** The outcome of {@link Trainer.fit}. */
export interface FitResult {
  history: EpochRecord[];
  /** Epoch with the best monitored metric (the last epoch without validation). */
  bestEpoch: number;
  stoppedEarly: boolean;
  seconds: number;
}

/** Trains one method; see {@link TrainerOptions}. */
export class Trainer {
  readonly optimizer: optim.Optimizer;
  /** Epochs completed so far (restored from a checkpoint). */
  epoch = 0;
  /** Optimizer steps so far. */
  step = 0;
  /** Non-finite steps skipped so far (see {@link TrainerOptions.skipNonFiniteSteps}). */
  skippedSteps = 0;
  private readonly options: Required<Pick<TrainerOptions, 'epochs' | 'lr' | 'logEvery' | 'monitor'>> & TrainerOptions;
  /** The training step, captured unless {@link TrainerOptions.stepMode} is `eager`. */
  readonly trainStep: CompiledStep<Batch, Tensor>;

  constructor(
    readonly method: CvrMethod,
    options: TrainerOptions = {},
  ) {
    if (options.jsonlPath !== undefined || options.checkpointPath !== undefined)
      requireNode('Trainer with jsonlPath or checkpointPath', [mkdirSync, appendFileSync], INSTEAD.checkpoint);
    const d = TRAINER_DEFAULTS;
    this.options = {
      ...options,
      epochs: options.epochs ?? d.epochs,
      lr: options.lr ?? d.lr,
      logEvery: options.logEvery ?? d.logEvery,
      monitor: options.monitor ?? d.monitor,
    };
    const params = method.parameters();
    this.optimizer =
      (options.optimizer ?? TRAINER_DEFAULTS.optimizer) === 'adam'
        ? new optim.Adam(params, { lr: this.options.lr, weightDecay: options.weightDecay })
        : new optim.SGD(params, { lr: this.options.lr, momentum: options.momentum, weightDecay: options.weightDecay });
    if (options.jsonlPath) mkdirSync(dirname(options.jsonlPath), { recursive: true });
    const clipNorm = options.clipNorm;
    this.trainStep = compileStep((batch: Batch) => trainStep(method, this.optimizer, batch, { clipNorm }), {
      mode: options.stepMode ?? TRAINER_DEFAULTS.stepMode,
    });
  }

  /** Train until `epochs` (or early stopping), evaluating on `valid` after each epoch when given. */
  async fit(train: BatchSource, valid?: BatchSource): Promise<FitResult> {
    const started = performance.now();
    const history: EpochRecord[] = [];
    const { monitor, patience } = this.options;
    let best = -Infinity;
    let bestEpoch = this.epoch;
    let sinceBest = 0;
    let stoppedEarly = false;
    while (this.epoch < this.options.epochs) {
      const record = await this.trainEpoch(train);
      if (valid) {
        record.metrics = await this.evaluate(valid);
        const value = record.metrics[monitor];
        if (value === undefined)
          throw new Error(`Trainer: monitored metric '${monitor}' is not available on this data`);
        const score = LOWER_IS_BETTER.has(monitor) ? -value : value;
        if (score > best) {
          best = score;
          bestEpoch = record.epoch;
          sinceBest = 0;
        } else {
          sinceBest++;
        }
      } else {
        bestEpoch = record.epoch;
      }
      history.push(record);
      this.logEvent({ type: 'epoch', ...record });
      this.print(this.describeEpoch(record));
      if (this.options.checkpointPath) await this.save(this.options.checkpointPath);
      if (patience !== undefined && sinceBest >= patience) {
        stoppedEarly = true;
        this.print(`early stopping: ${monitor} has not improved for ${patience} epoch(s); best epoch ${bestEpoch}`);
        break;
      }
    }
    return { history, bestEpoch, stoppedEarly, seconds: (performance.now() - started) / 1000 };
  }

  /** One pass over the training source. */
  async trainEpoch(train: BatchSource): Promise<EpochRecord> {
    const epoch = this.epoch + 1;
    const started = performance.now();
    const bar = this.progressMode() === 'bar';
    let samples = 0;
    let steps = 0;
    // The loss is summed on the device and read only every `logEvery` steps.
    let lossSum: Tensor | null = null;
    let lastShown = 0;
    this.method.train();
    for await (const batch of train.batches(epoch)) {
      let loss: Tensor;
      try {
        this.method.checkBatch(batch);
        loss = this.trainStep(batch);
      } catch (e) {
        if (!(e instanceof NonFiniteStepError)) throw e;
        if (this.skippedSteps >= (this.options.skipNonFiniteSteps ?? 0)) {
          lossSum?.dispose();
          if (bar) this.out().write('\n');
          throw new DivergenceError(epoch, this.step + 1, e.parameter, e.message);
        }
        this.skippedSteps++;
        this.logEvent({ type: 'skip', epoch, step: this.step + 1, loss: e.loss, gradNorm: e.gradNorm });
        this.print(`epoch ${epoch} step ${this.step + 1}: skipped (${e.message})`);
        train.recycle?.(batch);
        continue;
      }
      // The step has read the batch (its kernels copy what they keep): the source may reuse it.
      samples += batch.size;
      train.recycle?.(batch);
      const next: Tensor = noGrad(() => (lossSum ? add(lossSum, loss) : loss.detach()));
      if (lossSum) lossSum.dispose();
      loss.dispose();
      lossSum = next;
      steps++;
      this.step++;
      if (steps % this.options.logEvery === 0) {
        lastShown = lossSum.item() / steps;
        const rate = samples / ((performance.now() - started) / 1000);
        this.logEvent({ type: 'step', epoch, step: this.step, loss: lastShown, samplesPerSecond: rate });
        if (bar) this.drawBar(epoch, samples, train.rows, rate, lastShown);
        else
          this.print(`epoch ${epoch} step ${this.step}: loss ${lastShown.toFixed(5)}, ${Math.round(rate)} samples/s`);
      }
    }
    if (bar) this.out().write('\n');
    const trainLoss = lossSum ? (lossSum as Tensor).item() / steps : NaN;
    if (steps > 0 && !Number.isFinite(trainLoss)) {
      (lossSum as Tensor | null)?.dispose();
      throw new DivergenceError(epoch, this.step, undefined, `the epoch's mean loss is ${trainLoss}`);
    }
    (lossSum as Tensor | null)?.dispose();
    this.epoch = epoch;
    const seconds = (performance.now() - started) / 1000;
    return { epoch, trainLoss, steps, samples, seconds, samplesPerSecond: samples / seconds };
  }

  /** Metrics over a whole source, computed once over all rows (never averaged per batch). */
  async evaluate(source: BatchSource): Promise<EsmmMetrics> {
    const acc = new EsmmAccumulator();
    for await (const batch of source.batches(0)) {
      const p = this.method.predict(batch);
      const extra = batch as Batch & EvalColumns;
      acc.add({
        click: batch.click,
        conversion: batch.conversion,
        pCtr: p.pctr,
        pCvr: p.pcvr,
        pCtcvr: p.pctcvr,
        ...(extra.potentialConversion ? { potentialConversion: extra.potentialConversion } : {}),
        ...(batch.userIds ? { userIds: batch.userIds } : {}),
      });
    }
    return acc.compute();
  }

  /** Save model, optimizer state, sampling state and counters to one safetensors file (atomically). */
  async save(path: string): Promise<void> {
    const tensors: Record<string, Tensor> = {};
    for (const [name, t] of this.method.namedParameters()) tensors[`model.${name}`] = t;
    const state = this.optimizer.stateDict();
    for (const [name, t] of Object.entries(state.tensors)) tensors[`optimizer.${name}`] = t;
    const meta = {
      format: 'esmm-ts/trainer@1',
      method: this.method.method,
      epoch: String(this.epoch),
      step: String(this.step),
      optimizerScalars: JSON.stringify(state.scalars),
      samplingState: JSON.stringify(this.method.samplingState()),
    };
    try {
      // A parameter or optimizer state that went NaN/Inf is never written: the previous checkpoint stays.
      await saveCheckpoint(path, tensors, meta, { requireFinite: true });
    } catch (e) {
      const m = /^checkpoint: tensor "(.*)" holds/.exec((e as Error).message);
      if (!m) throw e;
      const name = m[1].replace(/^model\./, '');
      throw new DivergenceError(this.epoch, this.step, name, (e as Error).message.replace(/^checkpoint: /, ''));
    }
  }

  /**
   * Restore everything {@link Trainer.save} wrote. All-or-nothing: the header, the metadata, every
   * tensor's name and shape, the optimizer state and every checksum are checked before anything is
   * written; then tensors stream from the file straight into the parameters and optimizer state.
   */
  async load(path: string): Promise<void> {
    const file = await openCheckpoint(path);
    try {
      await this.loadFrom(file);
    } finally {
      await file.close();
    }
  }

  private async loadFrom(file: CheckpointFile): Promise<void> {
    const path = file.path;
    const fail = (detail: string): never => {
      throw new CheckpointError(path, detail);
    };
    const meta = file.metadata;
    if (meta.format !== 'esmm-ts/trainer@1') fail(`not a trainer checkpoint (format '${meta.format ?? 'missing'}')`);
    if (meta.method !== this.method.method)
      fail(`checkpoint of method '${meta.method}', this trainer trains '${this.method.method}'`);
    if (!file.checksummed) fail('has no tensor checksums, so its data cannot be verified');
    const epoch = parseCount(meta.epoch, path, 'epoch');
    const step = parseCount(meta.step, path, 'step');
    const scalars = parseJson<unknown>(meta.optimizerScalars, path, 'optimizerScalars');
    if (typeof scalars !== 'object' || scalars === null || Array.isArray(scalars))
      fail("checkpoint metadata 'optimizerScalars' is not a JSON object");
    for (const [k, v] of Object.entries(scalars as object))
      if (typeof v !== 'number') fail(`checkpoint metadata 'optimizerScalars': '${k}' is not a number`);
    const sampling = parseJson<unknown>(meta.samplingState, path, 'samplingState');
    if (!Array.isArray(sampling) || !sampling.every((v) => typeof v === 'number' || v === null))
      fail("checkpoint metadata 'samplingState' is not an array of numbers");

    const params = new Map(this.method.namedParameters());
    const problems: string[] = [];
    const optimizerShapes: Record<string, number[]> = {};
    for (const [name, e] of file.entries) {
      if (name.startsWith('model.')) {
        const p = params.get(name.slice(6));
        if (!p) problems.push(`unexpected tensor '${name}'`);
        else if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i]))
          problems.push(`'${name}' has shape [${e.shape.join(', ')}], the model's is [${p.shape.join(', ')}]`);
      } else if (name.startsWith('optimizer.')) optimizerShapes[name.slice(10)] = e.shape;
      else problems.push(`unexpected tensor '${name}'`);
    }
    for (const name of params.keys()) if (!file.entries.has(`model.${name}`)) problems.push(`missing 'model.${name}'`);
    problems.push(
      ...this.optimizer.checkState(optimizerShapes, scalars as Record<string, number>).map((p) => `optimizer: ${p}`),
    );
    if (problems.length > 0)
      fail(
        `does not fit this trainer: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`,
      );
    // Sampling state validates itself; keep the current one to put back if anything below fails.
    const previousSampling = this.method.samplingState();
    try {
      this.method.restoreSamplingState((sampling as (number | null)[]).map((v) => (v === null ? NaN : v)));
    } catch (e) {
      fail(`checkpoint metadata 'samplingState': ${(e as Error).message}`);
    }
    try {
      // Every checksum before the first write: a corrupt file changes nothing.
      await file.verify();
    } catch (e) {
      this.method.restoreSamplingState(previousSampling);
      throw e;
    }
    for (const [name, p] of params) await file.read(`model.${name}`, { into: p });
    const targets = this.optimizer.prepareState(Object.keys(optimizerShapes), scalars as Record<string, number>);
    for (const [name, t] of Object.entries(targets)) await file.read(`optimizer.${name}`, { into: t });
    this.epoch = epoch;
    this.step = step;
  }

  private progressMode(): ProgressMode {
    const mode = this.options.progress ?? TRAINER_DEFAULTS.progress;
    if (mode !== 'auto') return mode;
    return this.out().isTTY ? 'bar' : 'lines';
  }

  private out(): ProgressStream {
    return this.options.stream ?? defaultStream();
  }

  private print(line: string): void {
    if (this.progressMode() === 'none') return;
    this.out().write(`${line}\n`);
  }

  private drawBar(epoch: number, samples: number, total: number | undefined, rate: number, loss: number): void {
    const width = 30;
    const fraction = total ? Math.min(1, samples / total) : 0;
    const filled = Math.round(fraction * width);
    const bar = total
      ? `[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`
      : `${samples} rows`;
    this.out().write(`\repoch ${epoch} ${bar}  ${Math.round(rate)} samples/s  loss ${loss.toFixed(5)}`);
  }

  private describeEpoch(r: EpochRecord): string {
    const m = r.metrics;
    const metrics = m
      ? `, CTR AUC ${formatAuc(m, 'ctrAuc')}, CVR AUC ${formatAuc(m, 'cvrAuc')}, CTCVR AUC ${formatAuc(m, 'ctcvrAuc')}` +
        (m.cvrAucEntireSpace !== undefined ? `, entire-space CVR AUC ${formatAuc(m, 'cvrAucEntireSpace')}` : '')
      : '';
    return `epoch ${r.epoch}: loss ${r.trainLoss.toFixed(5)}, ${r.samples} samples in ${r.seconds.toFixed(1)} s (${Math.round(r.samplesPerSecond)}/s)${metrics}`;
  }

  private logEvent(event: Record<string, unknown>): void {
    if (!this.options.jsonlPath) return;
    appendFileSync(
      this.options.jsonlPath,
      `${JSON.stringify({ time: new Date().toISOString(), method: this.method.method, ...event })}\n`,
    );
  }
}

function parseJson<T>(text: string | undefined, path: string, key: string): T {
  if (text === undefined) throw new CheckpointError(path, `checkpoint metadata lacks '${key}'`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CheckpointError(path, `checkpoint metadata '${key}' is not valid JSON`);
  }
}

/** A counter from the metadata: a non-negative integer written in decimal digits. */
function parseCount(text: string | undefined, path: string, key: string): number {
  if (text === undefined) throw new CheckpointError(path, `checkpoint metadata lacks '${key}'`);
  const n = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(n))
    throw new CheckpointError(
      path,
      `checkpoint metadata '${key}' is ${JSON.stringify(text)}, not a non-negative integer`,
    );
  return n;
}
