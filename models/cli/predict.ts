/** `esmm predict`: score a checkpoint's test split into a CSV of pCTR, pCVR, pCTCVR and a ranking score. */
import { createWriteStream } from 'node:fs';
import { applyBackend, restore } from './common.js';
import { MODEL_IN_FLAGS } from './eval.js';
import { listNumber, parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';
import { prepareOutputFile } from './paths.js';

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
    if (exponents.length !== 2) throw new UsageError(`--score needs two numbers a,b, got '${exponents.join(',')}'`);
    const [a, b] = exponents.map((x) => listNumber('score', x, false));
    const out = prepareOutputFile('--out', str(v, 'out')!);
    const { data, method } = await restore(str(v, 'model')!);
    const file = createWriteStream(out);
    // A write error (disk full, a vanished folder) rejects here instead of escaping as an unhandled event.
    let failed: Error | undefined;
    const failure = new Promise<never>((_, reject) =>
      file.on('error', (e) => {
        failed = e;
        reject(e);
      }),
    );
    failure.catch(() => undefined);
    const write = async (text: string): Promise<void> => {
      if (failed) throw failed;
      if (!file.write(text)) await Promise.race([new Promise<void>((r) => file.once('drain', () => r())), failure]);
    };
    await write('row,pctr,pcvr,pctcvr,score\n');
    let row = 0;
    for await (const batch of data.test.batches(0)) {
      const p = method.predict(batch);
      let chunk = '';
      for (let i = 0; i < batch.size; i++, row++) {
        const score = Math.pow(p.pctr[i], a) * Math.pow(p.pcvr[i], b);
        chunk += `${row},${p.pctr[i]},${p.pcvr[i]},${p.pctcvr[i]},${score}\n`;
      }
      await write(chunk);
    }
    await Promise.race([new Promise<void>((resolve) => file.end(() => resolve())), failure]);
    if (failed) throw failed;
    console.log(`scored ${row} rows → ${out}`);
    return 0;
  },
};
