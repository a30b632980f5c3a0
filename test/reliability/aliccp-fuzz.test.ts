/**
 * Mutated Ali-CCP skeleton lines through the reader's public API: in skip mode one pass over all of
 * them must end (no crash, no hang), account for every line, and hand training only batches that pass
 * validateBatch; in error mode a sample of single-mutation files must each end in an AliCcpFormatError
 * naming file:line, or in rows. ESMM_FUZZ_ALICCP_LINES sets the number of mutated lines (default 10,000).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { AliCcpFormatError, AliCcpReader, aliCcpFiles, Vocabulary } from '../../models/data/aliccp.js';
import { writeSimulatorAliCcp } from '../../models/data/aliccp-writer.js';
import { FunnelSimulator } from '../../models/data/simulator.js';
import { validateBatch } from '../../models/schema.js';

const LINES = Number(process.env.ESMM_FUZZ_ALICCP_LINES ?? 10_000);
const ERROR_MODE_CASES = 200;
const dir = mkdtempSync(join(tmpdir(), 'esmm-aliccp-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PIECES = [
  '\x01',
  '\x02',
  '\x03',
  ',',
  '-',
  '.',
  'e',
  '0',
  '9',
  '1e39',
  'NaN',
  '-1',
  '9007199254740993',
  ' ',
  '\n',
];

function mutate(line: string, rng: Rng): string {
  const at = (n: number) => Math.floor(rng.uniform() * n);
  const i = at(line.length + 1);
  switch (at(8)) {
    case 0:
      return line.slice(0, i) + line.slice(i + 1);
    case 1:
      return line.slice(0, i) + PIECES[at(PIECES.length)] + line.slice(i);
    case 2:
      return line.slice(0, i) + PIECES[at(PIECES.length)] + line.slice(i + 1);
    case 3:
      return line.slice(0, i);
    case 4: {
      const fields = line.split(',');
      const f = at(fields.length);
      fields.splice(f, 0, fields[f]);
      return fields.join(',');
    }
    case 5: {
      const fields = line.split(',');
      fields.splice(at(fields.length), 1);
      return fields.join(',');
    }
    case 6:
      return line.replace(/\d+(\.\d+)?/g, (m) => (rng.uniform() < 0.2 ? PIECES[9 + at(4)] : m));
    default:
      return '';
  }
}

describe('mutated Ali-CCP lines', () => {
  const sim = new FunnelSimulator({ seed: 5, numUsers: 60, numItems: 90 });
  const good = join(dir, 'good');
  const prepare = async () => {
    mkdirSync(good, { recursive: true });
    await writeSimulatorAliCcp(sim, sim.generate(2000), good, 'train');
    const files = aliCcpFiles(good, 'train');
    return { files, lines: readFileSync(files.skeleton, 'utf8').split('\n').filter(Boolean) };
  };

  it(`${LINES} mutated lines in skip mode: one pass ends, every line is accounted for, batches are valid`, async () => {
    const { files, lines } = await prepare();
    const vocabulary = await Vocabulary.build(files);
    const rng = new Rng(42);
    const out: string[] = [];
    for (let k = 0; k < LINES; k++) out.push(mutate(lines[k % lines.length], rng));
    const skeleton = join(dir, 'mutated.csv');
    writeFileSync(skeleton, `${out.join('\n')}\n`);
    const reader = new AliCcpReader({ skeleton, common: files.common }, { encoder: vocabulary, onMalformed: 'skip' });
    let rows = 0;
    const invalid: string[] = [];
    for await (const batch of reader.batches({ batchSize: 256 })) {
      rows += batch.size;
      try {
        validateBatch(reader.schema, batch);
      } catch (e) {
        invalid.push((e as Error).message);
      }
    }
    console.log(
      `Ali-CCP fuzz, skip mode: ${LINES} mutated lines → ${rows} rows, ${reader.stats.skippedMalformed} skipped, ${invalid.length} invalid batches`,
    );
    expect(invalid.slice(0, 5)).toEqual([]);
    expect(reader.stats.skippedMalformed).toBeGreaterThan(0);
    // A mutation can split one line in two (an inserted newline) or leave it valid; none vanishes unaccounted.
    expect(rows + reader.stats.skippedMalformed).toBeGreaterThanOrEqual(LINES - out.filter((l) => l === '').length);
  });

  it(`${ERROR_MODE_CASES} single mutations in error mode: an AliCcpFormatError naming file:line, or rows`, async () => {
    const { files, lines } = await prepare();
    const vocabulary = await Vocabulary.build(files);
    const rng = new Rng(43);
    const failures: string[] = [];
    const outcomes = { error: 0, rows: 0 };
    for (let c = 0; c < ERROR_MODE_CASES; c++) {
      const target = 1 + (c % 20);
      const text = lines.slice(0, 20).map((l, i) => (i + 1 === target ? mutate(l, rng) : l));
      const skeleton = join(dir, `case-${c}.csv`);
      writeFileSync(skeleton, `${text.join('\n')}\n`);
      const reader = new AliCcpReader(
        { skeleton, common: files.common },
        { encoder: vocabulary, onMalformed: 'error' },
      );
      try {
        for await (const batch of reader.batches({ batchSize: 64 })) validateBatch(reader.schema, batch);
        outcomes.rows++;
      } catch (e) {
        outcomes.error++;
        if (!(e instanceof AliCcpFormatError) || !e.message.startsWith(`${skeleton}:`))
          failures.push(`case ${c}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      }
      rmSync(skeleton);
    }
    console.log(`Ali-CCP fuzz, error mode: ${JSON.stringify(outcomes)}`);
    expect(failures.slice(0, 5)).toEqual([]);
  });
});
