// esmm export and esmm serve from the command line: train a small model, export it, serve both forms.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { main } from '../models/cli/index.js';
import { FunnelSimulator } from '../models/index.js';
import { loadTrainedModel, readOnnxMetadata, toOnnxFeeds } from '../models/serving/index.js';

const dir = mkdtempSync(join(tmpdir(), 'esmm-cli-serving-'));
const model = join(dir, 'model.safetensors');

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    return { code: await main(args), out: lines.join('\n') };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

describe('esmm export and esmm serve', () => {
  afterEach(() => vi.restoreAllMocks());

  test('train, export: ONNX Runtime scores as the checkpoint does, with the config in the metadata', async () => {
    const trained = await run([
      'train',
      ...['--train-rows', '1000', '--test-rows', '300', '--hidden', '8', '--base', 'deepfm', '--out', model],
    ]);
    expect(trained.code).toBe(0);
    const exported = await run(['export', '--model', model]);
    expect(exported.code).toBe(0);
    const onnxPath = join(dir, 'model.onnx');
    expect(exported.out).toContain(onnxPath);
    const bytes = readFileSync(onnxPath);
    const meta = readOnnxMetadata(bytes);
    expect(meta.method).toBe('esmm');
    expect(meta.base_model).toBe('deepfm');
    expect(meta.training_commit).toMatch(/^([0-9a-f]{40}|unknown)$/);
    const { method } = await loadTrainedModel(model);
    const sim = new FunnelSimulator({ seed: 1 });
    const batch = sim.batch(sim.generate(300));
    const session = await ort.InferenceSession.create(bytes);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, f] of Object.entries(toOnnxFeeds(method.schema, batch)))
      feeds[k] = new ort.Tensor(f.type, f.data, f.dims);
    const out = await session.run(feeds);
    const eager = method.predict(batch);
    const got = out.pctcvr.data as Float32Array;
    for (let i = 0; i < batch.size; i++) expect(Math.abs(got[i] - eager.pctcvr[i])).toBeLessThanOrEqual(1e-5);
    await session.release();
  });

  test.each([['model.safetensors'], ['model.onnx']])(
    'esmm serve --model %s answers until SIGTERM, then exits 0',
    async (file) => {
      const lines: string[] = [];
      vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
      vi.spyOn(console, 'error').mockImplementation(() => undefined);
      const exit = main(['serve', '--model', join(dir, file), '--port', '0']);
      while (!lines.some((l) => l.includes('http://'))) await new Promise((r) => setTimeout(r, 10));
      const url = /http:\/\/[\d.:]+/.exec(lines.join('\n'))![0];
      const health = (await (await fetch(`${url}/healthz`)).json()) as { engine: string };
      expect(health.engine).toBe(file.endsWith('.onnx') ? 'onnxruntime' : 'esmm-ts');
      const meta = (await (await fetch(`${url}/metadata`)).json()) as {
        schema: { fields: { name: string }[] };
        vocabulary_sha256: string;
      };
      // Trained on simulated batches: no vocabulary, ids are rows.
      expect(meta.vocabulary_sha256).toBe('none');
      const row = Object.fromEntries(
        meta.schema.fields.map((f) => [
          f.name,
          f.name.includes('_') || f.name === '508' || f.name === '509' || f.name === '702' ? [1, 2] : 1,
        ]),
      );
      const res = await fetch(`${url}/score`, { method: 'POST', body: JSON.stringify({ rows: [row, row] }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { pctr: number[]; score: number[] };
      expect(body.pctr).toHaveLength(2);
      process.emit('SIGTERM', 'SIGTERM');
      expect(await exit).toBe(0);
    },
  );

  test('bad flags are usage errors', async () => {
    expect((await run(['serve', '--model', model, '--engine', 'tensorflow'])).code).toBe(2);
    expect((await run(['export', '--model', join(dir, 'absent.safetensors')])).code).toBe(1);
  });
});
