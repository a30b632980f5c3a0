/**
 * The paper's Table 2 protocol as one call: every method trained with the same base
 * model, optimizer, embedding size and towers on the same data, N repeats with
 * different seeds, CVR AUC on clicked test rows and CTCVR AUC on all test rows
 * (plus the entire-space CVR AUC that only simulated data allows), mean ± std.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../../kernels/index.js';
import { aliCcpFiles, AliCcpReader, Vocabulary, type MalformedPolicy } from '../data/aliccp.js';
import { DEFAULT_SHUFFLE_BUFFER } from '../data/rows.js';
import {
  DEFAULT_SIMULATOR_CONFIG,
  FunnelSimulator,
  type ImpressionLog,
  type SimulatorConfig,
} from '../data/simulator.js';
import { TOWER_DEFAULTS, validateBaseModelOptions, type AnyBaseModelOptions } from '../base/base-model.js';
import { validateMethodOptions } from '../methods/registry.js';
import { AMAN_DEFAULTS, OVERSAMPLING_DEFAULTS } from '../methods/click-space.js';
import {
  createModel,
  listMethods,
  methodInfo,
  MODEL_DEFAULTS,
  TABLE2_METHODS,
  type CreateModelOptions,
  type MethodName,
  type Table2MethodName,
} from '../model-factory.js';
import { esmmMetrics, type AucMetric, type EsmmMetrics } from '../metrics.js';
import type { Schema } from '../schema.js';
import { aliCcpSource, simulatorSource, SOURCE_DEFAULTS } from './sources.js';
import { openParquetData, type ParquetDataSpec } from './sources-parquet.js';
import { Trainer, TRAINER_DEFAULTS, type BatchSource } from './trainer.js';
import { INSTEAD, requireNode } from '../node-only.js';

/**
 * Defaults of {@link runTable2}: the paper's protocol (its seven methods, 10 repeats) with the
 * Trainer's, the sources' and the methods' own defaults, so the CLI and the API run the same table.
 */
export const TABLE2_DEFAULTS = {
  methods: TABLE2_METHODS as readonly MethodName[],
  base: MODEL_DEFAULTS.base,
  repeats: 10,
  epochs: TRAINER_DEFAULTS.epochs,
  batchSize: SOURCE_DEFAULTS.batchSize,
  lr: TRAINER_DEFAULTS.lr,
  hidden: TOWER_DEFAULTS.hidden,
  amanRate: AMAN_DEFAULTS.negativeRate,
  oversamplingFactor: OVERSAMPLING_DEFAULTS.factor,
  seed: 1,
  /** The preset of `esmm experiment table2 --suite` (its methods are `methods` above). */
  suite: 'table2',
  /** The quick start's split of the simulator's default world (what `esmm experiment table2` runs without data flags). */
  simulated: {
    trainRows: 150_000,
    testRows: 100_000,
    config: {
      seed: DEFAULT_SIMULATOR_CONFIG.seed,
      ctr: DEFAULT_SIMULATOR_CONFIG.ctr,
      cvr: DEFAULT_SIMULATOR_CONFIG.cvr,
    },
  },
} as const;

/**
 * Preset method lists: `table2`, the paper's seven; `mtl`, Table 2's BASE, ESMM and ESMM-NS against
 * the multi-task frames (each trained the ESMM way), AITM and ESCM².
 */
export const TABLE2_SUITES = {
  table2: TABLE2_METHODS as readonly MethodName[],
  mtl: [
    'base',
    'esmm',
    'esmm-ns',
    'shared-bottom',
    'mmoe',
    'ple',
    'aitm',
    'escm2-ips',
    'escm2-dr',
  ] as readonly MethodName[],
} as const;

/** A preset of {@link TABLE2_SUITES}. */
export type Table2Suite = keyof typeof TABLE2_SUITES;

/** The paper's Table 2 (public Ali-CCP data set), AUC in percent: mean and std over 10 runs. */
export const PAPER_TABLE2: Readonly<Record<Table2MethodName, { cvr: [number, number]; ctcvr: [number, number] }>> = {
  base: { cvr: [66.0, 0.37], ctcvr: [62.07, 0.45] },
  aman: { cvr: [65.21, 0.59], ctcvr: [63.53, 0.57] },
  oversampling: { cvr: [67.18, 0.32], ctcvr: [63.05, 0.48] },
  unbias: { cvr: [66.65, 0.28], ctcvr: [63.56, 0.7] },
  division: { cvr: [67.56, 0.48], ctcvr: [63.62, 0.09] },
  'esmm-ns': { cvr: [68.25, 0.44], ctcvr: [64.44, 0.62] },
  esmm: { cvr: [68.56, 0.37], ctcvr: [65.32, 0.49] },
};

/** Where the experiment's data come from. */
export type ExperimentData =
  | { kind: 'simulator'; config?: Partial<SimulatorConfig>; trainRows: number; testRows: number }
  | {
      kind: 'aliccp';
      dir: string;
      minCount?: number;
      limit?: number;
      shuffleBuffer?: number;
      /** Skip and count malformed lines instead of stopping (default 'error'). */
      onMalformed?: MalformedPolicy;
    }
  /** A folder written by `esmm prepare`, or users' Parquet files with a column spec (see {@link ParquetDataSpec}). */
  | ({ kind: 'parquet' } & ParquetDataSpec);

/** Options of {@link runTable2}. */
export interface Table2Options {
  data: ExperimentData;
  /** Registered methods to compare (default: the paper's seven). */
  methods?: readonly MethodName[];
  /** Base model of every tower. */
  base?: string;
  /** Repeats with different seeds (the paper's 10 by default). */
  repeats?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  /** Tower hidden sizes (shorthand for `tower.hidden`). */
  hidden?: readonly number[];
  /** Options of every tower, checked against the base model's declaration (`hidden` here overrides the shorthand). */
  tower?: AnyBaseModelOptions;
  /**
   * Each method's own options by method name, checked against its declaration, e.g.
   * `{ aman: { negativeRate: 0.1 } }`; they override the shorthands `amanRate`, `oversamplingFactor`, `lossWeights`.
   */
  methodOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** AMAN's negative sampling rate. */
  amanRate?: number;
  /** OVERSAMPLING's factor. */
  oversamplingFactor?: number;
  /** ESMM's loss weights (CTR, CTCVR). */
  lossWeights?: { ctr: number; ctcvr: number };
  /** First seed; repeat r uses seed + r (defaults in {@link TABLE2_DEFAULTS}). */
  seed?: number;
  /** Write report.md, report.svg, results.json and train.jsonl here. */
  outDir?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** One trained method in one repeat. */
export interface RunResult {
  method: MethodName;
  repeat: number;
  seed: number;
  metrics: EsmmMetrics;
  seconds: number;
}

/** Mean and sample standard deviation. */
export interface MeanStd {
  mean: number;
  std: number;
}

/** Per-method summary over repeats. */
export interface MethodSummary {
  /** A trained method, or `oracle`: the simulator's true propensities. */
  method: MethodName | 'oracle';
  cvrAuc: MeanStd;
  ctcvrAuc: MeanStd;
  ctrAuc: MeanStd;
  cvrAucEntireSpace?: MeanStd;
  /** Test-set sampling error of each AUC: DeLong's std over the test rows, averaged over repeats. */
  testStd: Partial<Record<AucMetric, number>>;
  seconds: number;
}

/** Everything the experiment produced. */
export interface Table2Result {
  runs: RunResult[];
  /** The oracle row first (simulated data), then every method in the order run. */
  summary: MethodSummary[];
  /** The simulator's true propensities scored on the test rows (simulated data only). */
  oracle?: EsmmMetrics;
  markdown: string;
  svg: string;
  seconds: number;
  description: string;
}

interface PreparedData {
  schema: Schema;
  train: BatchSource;
  test: BatchSource;
  description: string;
  /** The simulator's true propensities scored on the test rows (simulated data only). */
  oracle?: EsmmMetrics;
}

/**
 * The ceiling of every simulated report: the simulator's true pCTR, pCVR and pCTR·pCVR scored
 * with the same metrics on the same test rows. No model can beat it on average.
 */
export function oracleMetrics(log: ImpressionLog): EsmmMetrics {
  return esmmMetrics({
    click: log.click,
    conversion: log.conversion,
    pCtr: log.pCtr,
    pCvr: log.pCvr,
    potentialConversion: log.potentialConversion,
    userIds: Int32Array.from(log.user, (u) => u + 1),
  });
}

async function prepare(data: ExperimentData, batchSize: number, seed: number): Promise<PreparedData> {
  if (data.kind === 'simulator') {
    const sim = new FunnelSimulator(data.config ?? {});
    // Generated in stream order: the earlier half trains, the later half tests (time-ordered, as the paper's split).
    const train = sim.generate(data.trainRows);
    const test = sim.generate(data.testRows);
    const c = sim.config;
    return {
      schema: sim.schema,
      train: simulatorSource(sim, train, { batchSize, shuffle: true, seed }),
      test: simulatorSource(sim, test, { batchSize: SOURCE_DEFAULTS.evalBatchSize }),
      oracle: oracleMetrics(test),
      description:
        `simulated funnel (seed ${c.seed}): ${data.trainRows} train / ${data.testRows} test impressions, ` +
        `target CTR ${c.ctr}, CVR ${c.cvr}; ${c.numUsers} users, ${c.numItems} items`,
    };
  }
  if (data.kind === 'parquet') {
    const { schema, train, test, description } = await openParquetData(data, { batchSize, seed });
    return { schema, train, test, description };
  }
  const trainFiles = aliCcpFiles(data.dir, 'train');
  const testFiles = aliCcpFiles(data.dir, 'test');
  const onMalformed = data.onMalformed ?? 'error';
  const vocabulary = await Vocabulary.build(trainFiles, { minCount: data.minCount ?? 1, onMalformed });
  // One reader per split: its index of the common file is built on the first pass and reused.
  const trainReader = new AliCcpReader(trainFiles, { encoder: vocabulary, limit: data.limit, onMalformed });
  const testReader = new AliCcpReader(testFiles, { encoder: vocabulary, limit: data.limit, onMalformed });
  return {
    schema: trainReader.schema,
    train: aliCcpSource(() => trainReader, {
      batchSize,
      shuffleBuffer: data.shuffleBuffer ?? DEFAULT_SHUFFLE_BUFFER,
      seed,
    }),
    test: aliCcpSource(() => testReader, { batchSize: SOURCE_DEFAULTS.evalBatchSize }),
    description: `Ali-CCP files in ${data.dir} (vocabulary from the train split, min count ${data.minCount ?? 1}${data.limit ? `, first ${data.limit} rows` : ''})`,
  };
}

function meanStd(values: number[]): MeanStd {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

/** The shorthands of {@link Table2Options} as the own options of the methods that declare them. */
function shorthands(method: MethodName, o: Table2Options): Record<string, unknown> {
  const declared = methodInfo(method).options;
  const d = TABLE2_DEFAULTS;
  const out: Record<string, unknown> = {};
  if (method === 'aman') out.negativeRate = o.amanRate ?? d.amanRate;
  if (method === 'oversampling') out.factor = o.oversamplingFactor ?? d.oversamplingFactor;
  if (o.lossWeights && 'lossWeights' in declared) out.lossWeights = o.lossWeights;
  return out;
}

function methodOptions(method: MethodName, o: Table2Options, schema: Schema, seed: number): CreateModelOptions {
  const d = TABLE2_DEFAULTS;
  const tower = { hidden: o.hidden ?? d.hidden, ...o.tower };
  const own = { ...shorthands(method, o), ...o.methodOptions?.[method] };
  // The method's own options are checked against its registration inside createModel.
  return { ...own, schema, base: o.base ?? d.base, seed, tower, method } as CreateModelOptions;
}

/** Train and evaluate every method `repeats` times; returns the runs, the summary and the report. */
export async function runTable2(options: Table2Options): Promise<Table2Result> {
  const started = performance.now();
  if (options.outDir !== undefined) requireNode('runTable2 with outDir', [mkdirSync, writeFileSync], INSTEAD.reports);
  if (options.data.kind !== 'simulator')
    requireNode(`runTable2 on ${options.data.kind} files`, [mkdirSync], INSTEAD.data);
  const d = TABLE2_DEFAULTS;
  const methods = options.methods ?? d.methods;
  const repeats = options.repeats ?? d.repeats;
  const seed0 = options.seed ?? d.seed;
  const batchSize = options.batchSize ?? d.batchSize;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  for (const m of methods)
    if (!listMethods().includes(m)) throw new Error(`unknown method '${m}'; registered: ${listMethods().join(', ')}`);
  for (const m of Object.keys(options.methodOptions ?? {}))
    if (!methods.includes(m as MethodName))
      throw new Error(`methodOptions: '${m}' is not among the methods run (${methods.join(', ')})`);
  // Fail on a misspelt option before minutes of data preparation, not at the first model.
  for (const m of methods) validateMethodOptions(m, { ...shorthands(m, options), ...options.methodOptions?.[m] });
  validateBaseModelOptions(options.base ?? d.base, { hidden: options.hidden ?? d.hidden, ...options.tower });
  if (!(Number.isInteger(repeats) && repeats >= 1))
    throw new Error(`repeats must be a positive integer, got ${repeats}`);
  const data = await prepare(options.data, batchSize, seed0);
  log(
    `Table 2 on ${data.description}; methods ${methods.join(', ')}; ${repeats} repeat(s); backend ${getBackend().name}`,
  );
  if (data.oracle) {
    const o = data.oracle;
    log(
      `oracle (true propensities) CTR AUC ${pctAuc(o, 'ctrAuc')}  CVR AUC ${pctAuc(o, 'cvrAuc')}  CTCVR AUC ${pctAuc(o, 'ctcvrAuc')}  entire-space CVR AUC ${pctAuc(o, 'cvrAucEntireSpace')}`,
    );
  }
  if (options.outDir) mkdirSync(options.outDir, { recursive: true });

  const runs: RunResult[] = [];
  for (let r = 0; r < repeats; r++) {
    const seed = seed0 + r;
    for (const method of methods) {
      const model = createModel(methodOptions(method, options, data.schema, seed));
      const trainer = new Trainer(model, {
        epochs: options.epochs ?? d.epochs,
        lr: options.lr ?? d.lr,
        progress: 'none',
        jsonlPath: options.outDir ? join(options.outDir, 'train.jsonl') : undefined,
      });
      const t = performance.now();
      await trainer.fit(data.train);
      const metrics = await trainer.evaluate(data.test);
      const seconds = (performance.now() - t) / 1000;
      runs.push({ method, repeat: r, seed, metrics, seconds });
      log(
        `repeat ${r + 1}/${repeats} ${method.padEnd(12)} CTR AUC ${pctAuc(metrics, 'ctrAuc')}  CVR AUC ${pctAuc(metrics, 'cvrAuc')}  CTCVR AUC ${pctAuc(metrics, 'ctcvrAuc')}` +
          (metrics.cvrAucEntireSpace !== undefined
            ? `  entire-space CVR AUC ${pctAuc(metrics, 'cvrAucEntireSpace')}`
            : '') +
          `  (${seconds.toFixed(1)} s)`,
      );
    }
  }

  const summary: MethodSummary[] = [
    ...(data.oracle ? [summarize('oracle', [data.oracle], 0)] : []),
    ...methods.map((method) => {
      const mine = runs.filter((x) => x.method === method);
      return summarize(
        method,
        mine.map((x) => x.metrics),
        mine.reduce((a, x) => a + x.seconds, 0),
      );
    }),
  ];
  const seconds = (performance.now() - started) / 1000;
  const markdown = table2Markdown(summary, {
    description: data.description,
    repeats,
    seconds,
    backend: getBackend().name,
    options,
  });
  const svg = table2Svg(summary);
  if (options.outDir) {
    writeFileSync(join(options.outDir, 'report.md'), markdown);
    writeFileSync(join(options.outDir, 'report.svg'), svg);
    writeFileSync(
      join(options.outDir, 'results.json'),
      JSON.stringify({ description: data.description, oracle: data.oracle, runs, summary, seconds }, null, 2),
    );
  }
  return { runs, summary, oracle: data.oracle, markdown, svg, seconds, description: data.description };
}

const AUC_METRICS: readonly AucMetric[] = ['cvrAuc', 'ctcvrAuc', 'ctrAuc', 'cvrAucEntireSpace'];

function summarize(method: MethodSummary['method'], metrics: readonly EsmmMetrics[], seconds: number): MethodSummary {
  const testStd: Partial<Record<AucMetric, number>> = {};
  for (const k of AUC_METRICS) {
    const stds = metrics.map((m) => m.aucStd[k]).filter((v): v is number => v !== undefined);
    if (stds.length > 0) testStd[k] = stds.reduce((a, b) => a + b, 0) / stds.length;
  }
  const es = metrics.map((m) => m.cvrAucEntireSpace).filter((v): v is number => v !== undefined);
  return {
    method,
    cvrAuc: meanStd(metrics.map((m) => m.cvrAuc)),
    ctcvrAuc: meanStd(metrics.map((m) => m.ctcvrAuc)),
    ctrAuc: meanStd(metrics.map((m) => m.ctrAuc)),
    cvrAucEntireSpace: es.length === metrics.length ? meanStd(es) : undefined,
    testStd,
    seconds,
  };
}

/** The paper's figure for a Table 2 method, or a dash for a method the paper did not run. */
function paperCell(method: MethodName, metric: 'cvr' | 'ctcvr'): string {
  const row = (PAPER_TABLE2 as Partial<Record<string, (typeof PAPER_TABLE2)[Table2MethodName]>>)[method];
  return row ? `${row[metric][0].toFixed(2)} ± ${row[metric][1].toFixed(2)}` : '—';
}

function pct(x: number): string {
  return (100 * x).toFixed(2);
}

/** An AUC in percent with its test-set std, or why it is undefined. */
function pctAuc(m: EsmmMetrics, k: AucMetric): string {
  const reason = m.undefinedAuc[k];
  if (reason !== undefined) return `undefined (${reason})`;
  const std = m.aucStd[k];
  return `${pct(m[k] ?? NaN)}${std === undefined ? '' : ` ± ${pct(std)}`}`;
}

function fmt(m: MeanStd | undefined, testStd: number | undefined, repeats: number): string {
  if (!m) return '—';
  if (Number.isNaN(m.mean)) return 'undefined';
  const seedStd = repeats > 1 ? ` ± ${pct(m.std)}` : '';
  return `${pct(m.mean)}${seedStd}${testStd === undefined ? '' : ` (${pct(testStd)})`}`;
}

/** The report as a markdown table, with the oracle row (simulated data) and the paper's numbers beside ours. */
export function table2Markdown(
  summary: readonly MethodSummary[],
  context: { description: string; repeats: number; seconds: number; backend: string; options: Table2Options },
): string {
  const hasEs = summary.some((s) => s.cvrAucEntireSpace);
  const hasOracle = summary.some((s) => s.method === 'oracle');
  const head = [
    'method',
    'CVR AUC %',
    'CTCVR AUC %',
    ...(hasEs ? ['entire-space CVR AUC %'] : []),
    'CTR AUC %',
    'paper CVR AUC %',
    'paper CTCVR AUC %',
    'train+eval s',
  ];
  const rows = summary.map((s) => {
    const n = s.method === 'oracle' ? 1 : context.repeats;
    return [
      s.method === 'oracle' ? '**oracle** (true pCTR, pCVR)' : s.method,
      fmt(s.cvrAuc, s.testStd.cvrAuc, n),
      fmt(s.ctcvrAuc, s.testStd.ctcvrAuc, n),
      ...(hasEs ? [fmt(s.cvrAucEntireSpace, s.testStd.cvrAucEntireSpace, n)] : []),
      fmt(s.ctrAuc, s.testStd.ctrAuc, n),
      s.method === 'oracle' ? '—' : paperCell(s.method, 'cvr'),
      s.method === 'oracle' ? '—' : paperCell(s.method, 'ctcvr'),
      s.method === 'oracle' ? '—' : s.seconds.toFixed(1),
    ];
  });
  const o = context.options;
  const d = TABLE2_DEFAULTS;
  return [
    `# Table 2 reproduction`,
    ``,
    `Data: ${context.description}.`,
    `Protocol: ${context.repeats} repeat(s) with seeds ${o.seed ?? d.seed}..${(o.seed ?? d.seed) + context.repeats - 1}; base model \`${o.base ?? d.base}\`, ` +
      `towers ${(o.hidden ?? d.hidden).join('-')}, embedding dim 18, Adam lr ${o.lr ?? d.lr}, batch ${o.batchSize ?? d.batchSize}, ${o.epochs ?? d.epochs} epoch(s); ` +
      `backend ${context.backend}; ${context.seconds.toFixed(0)} s in all.`,
    `CVR AUC is over clicked test rows, CTCVR AUC over all test rows (pCTCVR = pCTR × pCVR), both computed globally; ` +
      `mean ± sample std over repeats, and in parentheses the test set's own sampling error (DeLong std over the test rows): ` +
      `a difference smaller than about twice it is noise.` +
      (hasEs
        ? ` The entire-space CVR AUC scores pCVR on every test impression against the conversion it would have had if clicked, which only a simulator knows.`
        : '') +
      (hasOracle
        ? ` The oracle row scores the simulator's true pCTR, pCVR and pCTR·pCVR on the same rows: the ceiling of what the data allow.`
        : ''),
    `The paper's numbers are on the public Ali-CCP data set and are shown for reference, not as a target for simulated data.`,
    ``,
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    ``,
  ].join('\n');
}

/** A grouped bar chart (CVR and CTCVR AUC, with ±1 std whiskers) as a standalone SVG. */
export function table2Svg(summary: readonly MethodSummary[]): string {
  // Wide enough that ten methods' names do not overlap.
  const width = Math.max(720, 80 + 96 * summary.length);
  const height = 360;
  const left = 60;
  const bottom = 300;
  const top = 40;
  const values = summary
    .flatMap((s) => [
      s.cvrAuc.mean - s.cvrAuc.std,
      s.ctcvrAuc.mean - s.ctcvrAuc.std,
      s.cvrAuc.mean + s.cvrAuc.std,
      s.ctcvrAuc.mean + s.ctcvrAuc.std,
    ])
    .filter(Number.isFinite);
  if (values.length === 0) values.push(0.5);
  const lo = Math.max(0, Math.floor(Math.min(...values) * 20) / 20 - 0.05);
  const hi = Math.min(1, Math.ceil(Math.max(...values) * 20) / 20 + 0.02);
  const y = (v: number): number => bottom - ((v - lo) / (hi - lo || 1)) * (bottom - top);
  const group = (width - left - 20) / Math.max(1, summary.length);
  const bar = group * 0.35;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">Table 2: test AUC by method (mean ± std)</text>`,
  ];
  for (let t = 0; t <= 4; t++) {
    const v = lo + ((hi - lo) * t) / 4;
    parts.push(`<line x1="${left}" x2="${width - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${(v * 100).toFixed(1)}</text>`);
  }
  summary.forEach((s, i) => {
    const x0 = left + i * group + group * 0.12;
    for (const [k, m, color] of [
      [0, s.cvrAuc, '#4e79a7'],
      [1, s.ctcvrAuc, '#f28e2b'],
    ] as const) {
      const x = x0 + k * bar;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(m.mean).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(bottom - y(m.mean)).toFixed(1)}" fill="${color}"/>`,
      );
      const cx = x + (bar - 2) / 2;
      parts.push(
        `<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${y(m.mean + m.std).toFixed(1)}" y2="${y(m.mean - m.std).toFixed(1)}" stroke="black"/>`,
      );
    }
    parts.push(`<text x="${(x0 + bar).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${s.method}</text>`);
  });
  parts.push(
    `<rect x="${left}" y="${height - 30}" width="12" height="12" fill="#4e79a7"/><text x="${left + 16}" y="${height - 20}">CVR AUC (clicked rows)</text>`,
  );
  parts.push(
    `<rect x="${left + 200}" y="${height - 30}" width="12" height="12" fill="#f28e2b"/><text x="${left + 216}" y="${height - 20}">CTCVR AUC (all rows)</text>`,
  );
  parts.push(`</svg>`);
  return parts.join('\n');
}
