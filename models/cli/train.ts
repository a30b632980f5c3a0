/** `esmm train`: train one method and write a checkpoint, evaluating on the test split each epoch. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { getBackend } from '../../kernels/index.js';
import { codeCommit } from '../serving/index.js';
import { Trainer, type MonitoredMetric } from '../training/trainer.js';
import {
  applyBackend,
  buildMethod,
  DATA_FLAGS,
  dataSpec,
  hiddenSizes,
  loadData,
  methodName,
  MODEL_FLAGS,
  type ModelConfig,
} from './common.js';
import { num, optNum, parseFlags, str, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  out: { kind: 'string', help: 'checkpoint to write (safetensors)', default: 'runs/model.safetensors' },
  log: { kind: 'string', help: 'JSONL log of training events' },
  patience: { kind: 'integer', help: 'early stopping: epochs without improvement of the test CTCVR AUC', min: 1 },
  monitor: { kind: 'string', help: 'metric for early stopping', default: 'ctcvrAuc' },
  resume: { kind: 'boolean', help: 'continue from --out if it exists' },
};

export const trainCommand: Command = {
  name: 'train',
  summary: 'Train one method (ESMM by default) and write a checkpoint; evaluates on the test split each epoch.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('train', args, FLAGS);
    await applyBackend(v);
    const out = str(v, 'out')!;
    mkdirSync(dirname(out), { recursive: true });
    const config: ModelConfig = {
      method: methodName(v),
      base: str(v, 'base')!,
      hidden: hiddenSizes(v),
      seed: num(v, 'seed'),
      lossWeights: { ctr: num(v, 'ctr-weight'), ctcvr: num(v, 'ctcvr-weight') },
      data: dataSpec(v),
      commit: codeCommit(),
    };
    const data = await loadData(config, num(v, 'batch-size'), `${out}.vocabulary.json`);
    const method = buildMethod(config, data.schema);
    const trainer = new Trainer(method, {
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
