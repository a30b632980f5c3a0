/**
 * SIGKILL at random moments: during checkpoint saves (every load must succeed with one complete save,
 * and no temp file may survive the next save), and during `esmm train --resume` runs, the first kill
 * landing before any checkpoint exists, which must still finish the run. ESMM_FUZZ_KILLS sets the
 * number of kills of the save loop (default 6; 30 or more for a measurement).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../core/index.js';
import { loadCheckpoint, openCheckpoint, saveCheckpoint } from '../../models/checkpoint.js';

const KILLS = Number(process.env.ESMM_FUZZ_KILLS ?? 6);
const RESUME_KILLS = Number(process.env.ESMM_FUZZ_RESUME_KILLS ?? 2);
const root = resolve(import.meta.dirname, '../..');
// Bundles live under node_modules so that their package imports resolve.
const bundles = join(root, 'node_modules', '.cache', 'esmm-reliability');
const dir = mkdtempSync(join(tmpdir(), 'esmm-sigkill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  mkdirSync(bundles, { recursive: true });
  const common = { bundle: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'warning' } as const;
  await build({
    ...common,
    entryPoints: [join(root, 'test/reliability/fixtures/save-loop.ts')],
    outfile: join(bundles, 'save-loop.mjs'),
  });
  await build({ ...common, entryPoints: [join(root, 'models/cli.ts')], outfile: join(bundles, 'cli.mjs') });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exited = (child: ChildProcess) =>
  new Promise<number | null>((r) =>
    child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code)),
  );
const temps = (folder: string, name: string) =>
  readdirSync(folder).filter((f) => f.startsWith(`.${name}.`) && f.endsWith('.tmp'));

describe('SIGKILL', () => {
  it(`during saves (${KILLS} kills): every load succeeds with one complete save; no temp file survives the next save`, async () => {
    const folder = join(dir, 'saves');
    mkdirSync(folder);
    const path = join(folder, 'm.safetensors');
    const rng = new Rng(7);
    let orphans = 0;
    let absent = 0;
    const counters: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const child = spawn(process.execPath, [join(bundles, 'save-loop.mjs'), path, String(1 << 21)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let saves = 0;
      child.stdout!.on('data', (d: Buffer) => (saves += d.toString().split('\n').length - 1));
      // The first kill lands before any save can finish; later ones at a random moment of a later save.
      if (k > 0) {
        while (saves < 1 && child.exitCode === null) await sleep(10);
        await sleep(rng.uniform() * 300);
      } else await sleep(30);
      child.kill('SIGKILL');
      await exited(child);
      if (!existsSync(path)) {
        absent++;
        expect(counters).toEqual([]);
        continue;
      }
      const ckpt = await loadCheckpoint(path);
      const counter = Number(ckpt.metadata.counter);
      counters.push(counter);
      for (const t of Object.values(ckpt.tensors)) {
        const values = t.toArray();
        expect(values.every((v) => v === counter)).toBe(true);
      }
      orphans += temps(folder, 'm.safetensors').length;
      // The next save removes what the killed process left.
      await saveCheckpoint(path, ckpt.tensors, ckpt.metadata);
      expect(temps(folder, 'm.safetensors')).toEqual([]);
    }
    console.log(
      `SIGKILL during saves: ${KILLS} kills, ${absent} before the first save, ${orphans} temp files left by kills, all removed by the next save; counters ${counters.join(',')}`,
    );
    expect(counters.length + absent).toBe(KILLS);
  });

  it(`during esmm train --resume (${RESUME_KILLS} kills, the first before any checkpoint): the run recovers`, async () => {
    const out = join(dir, 'resume', 'm.safetensors');
    const args = [
      join(bundles, 'cli.mjs'),
      'train',
      '--resume',
      '--epochs',
      '3',
      '--train-rows',
      '1500',
      '--test-rows',
      '300',
      '--hidden',
      '4',
      '--batch-size',
      '100',
      '--out',
      out,
    ];
    const rng = new Rng(11);
    let kills = 0;
    let firstKillBeforeCheckpoint = false;
    for (let attempt = 0; attempt < 30; attempt++) {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      if (kills < RESUME_KILLS) {
        const done = exited(child);
        const outcome = await Promise.race([
          done,
          sleep(kills === 0 ? 300 : 1000 + rng.uniform() * 3000).then(() => 'timer'),
        ]);
        if (outcome === 'timer') {
          if (kills === 0) firstKillBeforeCheckpoint = !existsSync(out);
          child.kill('SIGKILL');
          await done;
          kills++;
          continue;
        }
        expect(outcome, stderr).toBe(0);
        break;
      }
      const code = await exited(child);
      expect(code, stderr).toBe(0);
      break;
    }
    expect(firstKillBeforeCheckpoint).toBe(true);
    const file = await openCheckpoint(out);
    try {
      expect(file.metadata.epoch).toBe('3');
    } finally {
      await file.close();
    }
    expect(temps(join(dir, 'resume'), 'm.safetensors')).toEqual([]);
  });
});
