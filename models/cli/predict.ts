/** `esmm predict`: score a checkpoint's test split into a CSV of pCTR, pCVR, pCTCVR and a ranking score. */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { applyBackend, restore } from './common.js';
import { MODEL_IN_FLAGS } from './eval.js';
import { parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  ...MODEL_IN_FLAGS,
  out: { kind: 'string', help: 'CSV to write: row,pctr,pcvr,pctcvr,score', default: 'runs/predictions.csv' },
  score: { kind: 'list', help: 'ranking score exponents a,b of pCTR^a·pCVR^b', default: '1,1' },
};

export const predictCommand: Command = {
  name: 'predict',
  summary: 'Score the test split of a checkpoint: pCTR, pCVR, pCTCVR and a ranking score per row.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('predict', args, FLAGS);
    await applyBackend(v);
    const exponents = v.score as string[];
    const [a, b] = exponents.map(Number);
    if (exponents.length !== 2 || !Number.isFinite(a) || !Number.isFinite(b))
      throw new UsageError(`--score needs two numbers a,b, got '${exponents.join(',')}'`);
    const { data, method } = await restore(str(v, 'model')!);
    const out = str(v, 'out')!;
    mkdirSync(dirname(out), { recursive: true });
    const file = createWriteStream(out);
    file.write('row,pctr,pcvr,pctcvr,score\n');
    let row = 0;
    for await (const batch of data.test.batches(0)) {
      const p = method.predict(batch);
      let chunk = '';
      for (let i = 0; i < batch.size; i++, row++) {
        const score = Math.pow(p.pctr[i], a) * Math.pow(p.pcvr[i], b);
        chunk += `${row},${p.pctr[i]},${p.pcvr[i]},${p.pctcvr[i]},${score}\n`;
      }
      file.write(chunk);
    }
    await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
    console.log(`scored ${row} rows → ${out}`);
    return 0;
  },
};
