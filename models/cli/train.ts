/** `esmm train`: train one method and write a checkpoint, evaluating on the test split each epoch. */
import { existsSync, readFileSync } from 'node:fs';
import { getBackend } from '../../kernels/index.js';
import { codeCommit } from '../serving/index.js';
import { Trainer, TRAINER_DEFAULTS, type MonitoredMetric } from '../training/trainer.js';
import {
  applyBackend,
  buildMethod,
  configDifferences,
  DATA_FLAGS,
  dataSpec,
  baseName,
  baseOptions,
  jsonObject,
  optionsHelp,
  ownMethodOptions,
  loadData,
  methodName,
  MODEL_FLAGS,
  type ModelConfig,
} from './common.js';
import { num, optNum, parseFlags, str, UsageError, type Command, type FlagSpecs, type FlagValues } from './flags.js';
import { prepareOutputFile, writeFileAtomic } from './paths.js';

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
  resume: {
    kind: 'boolean',
    help: 'continue from --out if it exists (else start fresh); refuses other settings than the saved ones',
  },
  force: { kind: 'boolean', help: 'with --resume: continue even though the settings differ from the saved ones' },
  'skip-nonfinite-steps': {
    kind: 'integer',
    help: 'skip up to N steps with a NaN/Inf loss or gradient (as AMP does) before stopping',
    default: 0,
    min: 0,
  },
};

const MONITORS = ['ctrAuc', 'cvrAuc', 'ctcvrAuc', 'cvrAucEntireSpace', 'ctrLogloss', 'cvrLogloss', 'ctcvrLogloss'];

/** The model part of the config of parsed `train` flags; its options are checked here, before any data is read. */
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
    if (v.force && !v.resume) throw new UsageError('--force only applies with --resume');
    const monitor = str(v, 'monitor')!;
    if (!MONITORS.includes(monitor))
      throw new UsageError(`--monitor must be one of ${MONITORS.join(', ')}, got '${monitor}'`);
    const model = trainConfig(v);
    await applyBackend(v);
    // Every output is checked before any data is read or any epoch runs.
    const out = prepareOutputFile('--out', str(v, 'out')!);
    const log = str(v, 'log') !== undefined ? prepareOutputFile('--log', str(v, 'log')!) : undefined;
    const config: ModelConfig = {
      ...model,
      commit: codeCommit(),
      training: {
        lr: num(v, 'lr'),
        batchSize: num(v, 'batch-size'),
        ...(optNum(v, 'patience') !== undefined ? { patience: optNum(v, 'patience') } : {}),
        monitor,
        skipNonFiniteSteps: num(v, 'skip-nonfinite-steps'),
      },
    };
    const configPath = `${out}.config.json`;
    let resuming = false;
    if (v.resume) {
      if (!existsSync(out)) {
        console.error(`--resume: ${out} does not exist yet; starting fresh`);
      } else {
        const saved = readSavedConfig(configPath);
        const differences = configDifferences(comparable(saved), comparable(config));
        if (differences.length > 0 && !v.force)
          throw new UsageError(
            `--resume: ${out} was trained with other settings:\n  ${differences.join('\n  ')}\n` +
              'rerun with the same options, or add --force to continue anyway',
          );
        // The ids of a resumed Ali-CCP run must come from the vocabulary the checkpoint was trained with.
        if (saved.vocabularyPath) config.vocabularyPath = saved.vocabularyPath;
        resuming = true;
      }
    }
    const data = await loadData(config, config.training!.batchSize, `${out}.vocabulary.json`);
    const method = buildMethod(config, data.schema);
    const trainer = new Trainer(method, {
      epochs: num(v, 'epochs'),
      lr: config.training!.lr,
      patience: config.training!.patience,
      monitor: monitor as MonitoredMetric,
      jsonlPath: log,
      checkpointPath: out,
      skipNonFiniteSteps: config.training!.skipNonFiniteSteps,
    });
    if (resuming) {
      await trainer.load(out);
      console.error(`resumed from ${out} at epoch ${trainer.epoch}`);
    }
    await writeFileAtomic(configPath, JSON.stringify(config, null, 2));
    const result = await trainer.fit(data.train, data.test);
    const last = result.history[result.history.length - 1];
    const ran = result.history.length === 0 ? `nothing to do (already at epoch ${trainer.epoch}); ` : '';
    console.log(
      `${ran}trained ${config.method}/${config.base} on ${getBackend().name} in ${result.seconds.toFixed(1)} s; best epoch ${result.bestEpoch}; checkpoint ${out}`,
    );
    if (last?.metrics) console.log(JSON.stringify(last.metrics));
    return 0;
  },
};

/** The saved config of a checkpoint being resumed; without one, settings cannot be compared. */
function readSavedConfig(path: string): ModelConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--resume: cannot read ${path}, the settings of the run to continue: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as ModelConfig;
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
}

/** The settings a resumed run must share (the vocabulary file is derived and the code version is not a setting). */
function comparable(config: ModelConfig): Omit<ModelConfig, 'vocabularyPath' | 'commit'> {
  const { vocabularyPath: _derived, commit: _version, ...rest } = config;
  return rest;
}
