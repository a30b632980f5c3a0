/**
 * In a browser bundle the file and server functions fail at their entry with a NodeOnlyError that
 * names the function and what to use instead, not with "x is not a function" from deep inside. The
 * package is bundled as a browser app's bundler would (esbuild, platform browser, package.json's
 * `browser` field leaving the Node built-ins out) and the bundle is run here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'esmm-node-only-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each call of a Node-only function, as a browser app might write it.
const ENTRY = `
import { Tensor } from 'esmm-ts/core';
import * as m from 'esmm-ts/models';
import * as serving from 'esmm-ts/serving';
const sim = new m.FunnelSimulator({ seed: 1, numUsers: 10, numItems: 20 });
const model = m.createModel({ method: 'esmm', schema: sim.schema, tower: { hidden: [4] } });
const files = { skeleton: 'sample_skeleton_train.csv', common: 'common_features_train.csv' };
const t = { w: Tensor.fromArray([1, 2], [2]) };
export const calls = {
  saveCheckpoint: () => m.saveCheckpoint('model.safetensors', t),
  loadCheckpoint: () => m.loadCheckpoint('model.safetensors'),
  openCheckpoint: () => m.openCheckpoint('model.safetensors'),
  aliCcpFiles: () => m.aliCcpFiles('data', 'train'),
  AliCcpReader: () => new m.AliCcpReader(files, {}),
  'Vocabulary.build': () => m.Vocabulary.build(files),
  writeSimulatorAliCcp: () => m.writeSimulatorAliCcp(sim, sim.generate(10), 'out', 'train'),
  prepareAliCcp: () => m.prepareAliCcp({ dir: 'data', out: 'prepared' }),
  openPrepared: () => m.openPrepared('prepared'),
  'Trainer with jsonlPath or checkpointPath': () => new m.Trainer(model, { checkpointPath: 'model.safetensors' }),
  'runTable2 with outDir': () =>
    m.runTable2({ data: { kind: 'simulator', trainRows: 10, testRows: 10 }, outDir: 'runs', log: () => {} }),
  loadTrainedModel: () => serving.loadTrainedModel('model.safetensors'),
  startServer: () => serving.startServer(null),
};
export const inMemory = () => {
  // The parts concatenated, as a Blob for a download would hold them.
  const parts = m.encodeSafetensors(t);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
  return m.decodeSafetensors(bytes).tensors.w.toArray();
};
`;

describe('Node-only functions in a browser bundle', () => {
  it('throw NodeOnlyError naming the function and what to use instead', async () => {
    const outfile = join(dir, 'app.mjs');
    await build({
      stdin: { contents: ENTRY, resolveDir: root, sourcefile: 'app.ts', loader: 'ts' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outfile,
      tsconfig: join(root, 'tsconfig.json'),
      external: ['onnxruntime-node', 'gpu.js'],
      logLevel: 'silent',
    });
    const app = (await import(pathToFileURL(outfile).href)) as {
      calls: Record<string, () => unknown>;
      inMemory: () => ArrayLike<number>;
    };
    for (const [name, call] of Object.entries(app.calls)) {
      let error: unknown;
      try {
        await call();
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(Error);
      expect((error as Error).name, `${name}: ${(error as Error).message}`).toBe('NodeOnlyError');
      expect((error as Error).message).toMatch(new RegExp(`^${name.replace(/\./g, '\\.')} needs Node\\.js: .+; \\w`));
    }
    // What the errors point to works in the same bundle.
    expect(Array.from(app.inMemory())).toEqual([1, 2]);
  }, 120_000);
});
