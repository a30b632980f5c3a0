/** `esmm demo`: the core on its own — a small MLP learning an XOR-like task, its loss printed as it falls. */
import { runDemo } from '../../core/demo.js';
import { ready } from '../../kernels/index.js';
import { num, parseFlags, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  steps: { kind: 'integer', help: 'training steps', default: 200, min: 1 },
  seed: { kind: 'integer', help: 'seed', default: 1, min: 0 },
};

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Train a 2-layer MLP on a synthetic task and print its loss falling.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('demo', args, FLAGS);
    await ready();
    runDemo(num(v, 'steps'), num(v, 'seed'));
    return 0;
  },
};
