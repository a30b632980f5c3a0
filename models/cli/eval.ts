/** `esmm eval`: evaluate a checkpoint on its test split (CTR/CVR/CTCVR AUC, loglosses, GAUC). */
import { Trainer } from '../training/trainer.js';
import { applyBackend, BACKEND_FLAGS, restore } from './common.js';
import { parseFlags, str, type Command, type FlagSpecs } from './flags.js';

/** Flags of the commands that run a trained model. */
export const MODEL_IN_FLAGS: FlagSpecs = {
  model: { kind: 'string', help: 'checkpoint written by esmm train', default: 'runs/model.safetensors' },
  ...BACKEND_FLAGS,
};

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Evaluate a checkpoint on its test split: CTR/CVR/CTCVR AUC, loglosses, GAUC.',
  flags: MODEL_IN_FLAGS,
  async run(args) {
    const v = parseFlags('eval', args, MODEL_IN_FLAGS);
    await applyBackend(v);
    const { config, data, method } = await restore(str(v, 'model')!);
    const metrics = await new Trainer(method, { progress: 'none' }).evaluate(data.test);
    console.log(`${config.method}/${config.base} on the test split:`);
    for (const [k, value] of Object.entries(metrics))
      console.log(`  ${k.padEnd(18)} ${typeof value === 'number' ? +value.toFixed(6) : value}`);
    return 0;
  },
};
