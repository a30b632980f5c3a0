import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineReader } from '../models/data/lines.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'esmm-lines-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(r: LineReader): Promise<string[]> {
  const out: string[] = [];
  for (let l = await r.read(); l !== null; l = await r.read()) out.push(l);
  return out;
}

describe('LineReader', () => {
  it('splits across chunk boundaries, strips CR, keeps a last line without newline', async () => {
    const path = join(dir, 'a.txt');
    const lines = Array.from({ length: 200 }, (_, i) => `line-${i}-${'x'.repeat(i % 37)}\x01\x02`);
    await writeFile(path, lines.join('\r\n') + '\n\nlast', 'latin1');
    const r = new LineReader(path, { chunkBytes: 16 });
    expect(await readAll(r)).toEqual([...lines, '', 'last']);
    expect(r.lineNo).toBe(202);
  });

  it('refuses a line longer than the limit, naming file and line', async () => {
    const path = join(dir, 'b.txt');
    await writeFile(path, 'ok\n' + 'y'.repeat(5000), 'latin1');
    const r = new LineReader(path, { chunkBytes: 64, maxLineBytes: 1000 });
    await expect(readAll(r)).rejects.toThrow(/b\.txt:2: line longer than 1000 bytes/);
    await r.close();
    await expect(readAll(new LineReader(join(dir, 'none.txt')))).rejects.toThrow(/none\.txt: cannot open/);
  });
});
