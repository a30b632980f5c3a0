/** `esmm simulate`: write a simulated impression → click → conversion data set in the Ali-CCP raw format. */
import { writeSimulatorAliCcp } from '../data/aliccp-writer.js';
import { FunnelSimulator } from '../data/simulator.js';
import { DATA_FLAGS } from './common.js';
import { num, parseFlags, str, type Command, type FlagSpecs } from './flags.js';
import { prepareOutputDir } from './paths.js';

const FLAGS: FlagSpecs = {
  out: { kind: 'string', help: 'folder to write the Ali-CCP-format files into', default: 'data/simulated' },
  'train-rows': DATA_FLAGS['train-rows'],
  'test-rows': DATA_FLAGS['test-rows'],
  'sim-seed': DATA_FLAGS['sim-seed'],
  ctr: DATA_FLAGS.ctr,
  cvr: DATA_FLAGS.cvr,
};

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Write a simulated impression → click → conversion data set in the Ali-CCP raw format.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('simulate', args, FLAGS);
    const out = prepareOutputDir('--out', str(v, 'out')!);
    const sim = new FunnelSimulator({ seed: num(v, 'sim-seed'), ctr: num(v, 'ctr'), cvr: num(v, 'cvr') });
    const train = sim.generate(num(v, 'train-rows'));
    const test = sim.generate(num(v, 'test-rows'));
    for (const [split, log] of [
      ['train', train],
      ['test', test],
    ] as const) {
      const r = await writeSimulatorAliCcp(sim, log, out, split);
      console.log(
        `${split}: ${r.impressions} impressions in ${r.sessions} sessions → ${r.files.skeleton}, ${r.files.common}`,
      );
    }
    return 0;
  },
};
