/** `esmm experiment table2`: the paper's Table 2 protocol over every method, with a report and a chart. */
import { join } from 'node:path';
import { listMethods, type MethodName } from '../model-factory.js';
import { isPlainObject } from '../options.js';
import { runTable2, TABLE2_DEFAULTS, TABLE2_SUITES, type Table2Suite } from '../training/experiment.js';
import {
  applyBackend,
  baseName,
  baseOptions,
  DATA_FLAGS,
  dataSpec,
  jsonObject,
  MODEL_FLAGS,
  optionsHelp,
  ownMethodOptions,
} from './common.js';
import { list, num, parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';
import { prepareOutputDir } from './paths.js';

const { method: _method, ...modelFlags } = MODEL_FLAGS;
const FLAGS: FlagSpecs = {
  ...DATA_FLAGS,
  ...modelFlags,
  seed: {
    ...MODEL_FLAGS.seed,
    help: 'seed of the first repeat (repeat r uses seed + r)',
    default: TABLE2_DEFAULTS.seed,
  },
  methods: { kind: 'list', help: `methods to compare, of ${listMethods().join(', ')} (default: the suite's)` },
  suite: {
    kind: 'string',
    help: `preset methods: ${Object.entries(TABLE2_SUITES)
      .map(([k, m]) => `${k} (${m.join(', ')})`)
      .join('; ')}`,
    default: TABLE2_DEFAULTS.suite,
  },
  'method-options': {
    kind: 'string',
    help: 'options of each method as JSON keyed by method, e.g. \'{"aman":{"negativeRate":0.1}}\' (listed below)',
  },
  repeats: { kind: 'integer', help: 'repeats with different seeds', default: TABLE2_DEFAULTS.repeats, min: 1 },
  'aman-rate': {
    kind: 'number',
    help: 'AMAN negative sampling rate',
    default: TABLE2_DEFAULTS.amanRate,
    min: 0,
    max: 1,
  },
  'oversampling-factor': {
    kind: 'integer',
    help: 'OVERSAMPLING factor',
    default: TABLE2_DEFAULTS.oversamplingFactor,
    min: 1,
  },
  out: { kind: 'string', help: 'folder for report.md, report.svg, results.json', default: 'runs/table2' },
};

export const experimentCommand: Command = {
  name: 'experiment',
  usage: 'experiment table2',
  summary: "Run the paper's Table 2 protocol: `esmm experiment table2 [options]`.",
  flags: FLAGS,
  epilog: optionsHelp,
  async run(args) {
    const [which, ...rest] = args;
    if (which !== 'table2') throw new UsageError(`experiment: unknown experiment '${which ?? ''}'; available: table2`);
    const v = parseFlags('experiment table2', rest, FLAGS);
    const suite = str(v, 'suite')!;
    if (!(suite in TABLE2_SUITES))
      throw new UsageError(`--suite must be one of ${Object.keys(TABLE2_SUITES).join(', ')}, got '${suite}'`);
    const methods = (
      v.methods === undefined ? TABLE2_SUITES[suite as Table2Suite] : list(v, 'methods')
    ) as MethodName[];
    for (const m of methods)
      if (!listMethods().includes(m))
        throw new UsageError(`--methods: unknown method '${m}'; registered: ${listMethods().join(', ')}`);
    const base = baseName(v);
    const tower = baseOptions(v, base);
    const methodOptions: Record<string, Record<string, unknown>> = {};
    for (const [m, given] of Object.entries(jsonObject(v, 'method-options'))) {
      if (!methods.includes(m as MethodName))
        throw new UsageError(`--method-options: '${m}' is not among --methods (${methods.join(', ')})`);
      if (!isPlainObject(given)) throw new UsageError(`--method-options: the options of '${m}' must be an object`);
      methodOptions[m] = given;
    }
    // Every method's options are checked (with the shorthand flags) before any data is prepared.
    for (const m of methods) ownMethodOptions(m, v, methodOptions[m] ?? {});
    await applyBackend(v);
    const out = prepareOutputDir('--out', str(v, 'out')!);
    const result = await runTable2({
      data: dataSpec(v),
      methods,
      base,
      tower,
      methodOptions,
      repeats: num(v, 'repeats'),
      epochs: num(v, 'epochs'),
      batchSize: num(v, 'batch-size'),
      lr: num(v, 'lr'),
      hidden: tower.hidden as number[],
      amanRate: num(v, 'aman-rate'),
      oversamplingFactor: num(v, 'oversampling-factor'),
      lossWeights: { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') },
      seed: num(v, 'seed'),
      outDir: out,
    });
    console.log(`\n${result.markdown}`);
    console.log(`report: ${join(out, 'report.md')} and report.svg`);
    return 0;
  },
};
