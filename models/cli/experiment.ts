/** `esmm experiment table2`: the paper's Table 2 protocol over every method, with a report and a chart. */
import { join } from 'node:path';
import { listMethods, type MethodName } from '../model-factory.js';
import { runTable2, TABLE2_SUITES, type Table2Suite } from '../training/experiment.js';
import { applyBackend, DATA_FLAGS, dataSpec, hiddenSizes, MODEL_FLAGS } from './common.js';
import { list, num, parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';
import { prepareOutputDir } from './paths.js';

const FLAGS: FlagSpecs = {
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  methods: { kind: 'list', help: "methods to compare (default: the suite's)" },
  suite: {
    kind: 'string',
    help: `preset methods: ${Object.entries(TABLE2_SUITES)
      .map(([k, m]) => `${k} (${m.join(', ')})`)
      .join('; ')}`,
    default: 'table2',
  },
  repeats: { kind: 'integer', help: 'repeats with different seeds', default: 10, min: 1 },
  'aman-rate': { kind: 'number', help: 'AMAN negative sampling rate', default: 0.2, min: 0, max: 1 },
  'oversampling-factor': { kind: 'number', help: 'OVERSAMPLING factor', default: 5, min: 1 },
  out: { kind: 'string', help: 'folder for report.md, report.svg, results.json', default: 'runs/table2' },
};

export const experimentCommand: Command = {
  name: 'experiment',
  usage: 'experiment table2',
  summary: "Run the paper's Table 2 protocol: `esmm experiment table2 [options]`.",
  flags: FLAGS,
  async run(args) {
    const [which, ...rest] = args;
    if (which !== 'table2') throw new UsageError(`experiment: unknown experiment '${which ?? ''}'; available: table2`);
    const v = parseFlags('experiment table2', rest, FLAGS);
    await applyBackend(v);
    const suite = str(v, 'suite')!;
    if (!(suite in TABLE2_SUITES))
      throw new UsageError(`--suite must be one of ${Object.keys(TABLE2_SUITES).join(', ')}, got '${suite}'`);
    const methods = (
      v.methods === undefined ? TABLE2_SUITES[suite as Table2Suite] : list(v, 'methods')
    ) as MethodName[];
    for (const m of methods)
      if (!listMethods().includes(m))
        throw new UsageError(`--methods: unknown method '${m}'; registered: ${listMethods().join(', ')}`);
    const out = prepareOutputDir('--out', str(v, 'out')!);
    const result = await runTable2({
      data: dataSpec(v),
      methods,
      base: str(v, 'base'),
      repeats: num(v, 'repeats'),
      epochs: num(v, 'epochs'),
      batchSize: num(v, 'batch-size'),
      lr: num(v, 'lr'),
      hidden: hiddenSizes(v),
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
