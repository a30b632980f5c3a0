/** `esmm train`: train one method and write a checkpoint, evaluating on the test split each epoch. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { getBackend } from '../../kernels/index.js';
import { codeCommit } from '../serving/index.js';
import { Trainer, TRAINER_DEFAULTS, type MonitoredMetric } from '../training/trainer.js';
import {
  applyBackend,
  baseName,
  baseOptions,
  buildMethod,
  DATA_FLAGS,
  dataSpec,
  jsonObject,
  loadData,
  methodName,
  MODEL_FLAGS,
  optionsHelp,
  ownMethodOptions,
  type ModelConfig,
} from './common.js';
import { num, optNum, parseFlags, str, type Command, type FlagSpecs, type FlagValues } from './flags.js';

const FLAGS: FlagSpecs = {
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  'method-options': {
    kind: 'string',
    help: 'options of the method as JSON, e.g. \'{"negativeRate":0.1}\' for aman (listed below)',
  },
  out: { kind: 'string', help: 'checkpoint to write (safetensors)', default: 'runs/model.safetensors' },
  log: { kind: 'string', help: 'JSONL log of training events' },
  patience: { kind: 'integer', help: 'early stopping: epochs without improvement of the test CTCVR AUC', min: 1 },
  monitor: { kind: 'string', help: 'metric for early stopping', default: TRAINER_DEFAULTS.monitor },
  resume: { kind: 'boolean', help: 'continue from --out if it exists' },
};

/** The model config of parsed `train` flags; options are checked here, before a backend starts or data is read. */
export function trainConfig(v: FlagValues): ModelConfig {
  const method = methodName(v);
  const base = baseName(v);
  const tower = baseOptions(v, base);
  return {
    method,
    base,
    hidden: tower.hidden as number[],
    seed: num(v, 'seed'),
    lossWeights: { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') },
    baseOptions: tower,
    methodOptions: ownMethodOptions(method, v, jsonObject(v, 'method-options')),
    data: dataSpec(v),
  };
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'Train one method (ESMM by default) and write a checkpoint; evaluates on the test split each epoch.',
  flags: FLAGS,
  epilog: optionsHelp,
  async run(args) {
    const v = parseFlags('train', args, FLAGS);
    const config = { ...trainConfig(v), commit: codeCommit() };
    await applyBackend(v);
    const out = str(v, 'out')!;
    mkdirSync(dirname(out), { recursive: true });
    const data = await loadData(config, num(v, 'batch-size'), `${out}.vocabulary.json`);
    const model = buildMethod(config, data.schema);
    const trainer = new Trainer(model, {
      epochs: num(v, 'epochs'),
      lr: num(v, 'lr'),
      patience: optNum(v, 'patience'),
      monitor: str(v, 'monitor') as MonitoredMetric,
      jsonlPath: str(v, 'log'),
      checkpointPath: out,
    });
    if (v.resume) {
      await trainer.load(out);
      console.error(`resumed from ${out} at epoch ${trainer.epoch}`);
    }
    writeFileSync(`${out}.config.json`, JSON.stringify(config, null, 2));
    const result = await trainer.fit(data.train, data.test);
    const last = result.history[result.history.length - 1];
    console.log(
      `trained ${config.method}/${config.base} on ${getBackend().name} in ${result.seconds.toFixed(1)} s; best epoch ${result.bestEpoch}; checkpoint ${out}`,
    );
    if (last?.metrics) console.log(JSON.stringify(last.metrics));
    return 0;
  },
};
