/**
 * The demo page's session code run in Node, as `benchmarks/demo-browser.mjs` runs it: once training
 * ends, the process exits by itself. (An open MessagePort left by each of the page's yields once kept
 * it alive for good, so a script that trained never returned.)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

// Inside the repository, so that the bundle's external packages (gpu.js) resolve from its node_modules.
const root = join(import.meta.dirname, '..');
mkdirSync(join(root, 'test-results'), { recursive: true });
const dir = mkdtempSync(join(root, 'test-results', 'demo-session-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('demo session in Node', () => {
  it('trains and lets the process exit', async () => {
    // Bundled as the bench bundles it: the page's `esmm-ts/...` imports resolve through tsconfig's paths.
    await build({
      entryPoints: [join(root, 'docs/demo/session.ts')],
      bundle: true,
      format: 'esm',
      platform: 'node',
      outfile: join(dir, 'session.mjs'),
      tsconfig: join(root, 'tsconfig.json'),
      external: ['gpu.js', 'gl', 'onnxruntime-node'],
      logLevel: 'warning',
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    });
    const script = join(dir, 'train.mjs');
    writeFileSync(
      script,
      `import { DEFAULT_SETTINGS, DemoSession, createDemoBackend, releaseBackend } from './session.mjs';
const backend = { kind: 'wasm', threads: 1 };
const settings = { ...DEFAULT_SETTINGS, users: 300, items: 1000, trainRows: 20000, testRows: 2000,
  batchSize: 512, maxSteps: 30, evalEvery: 1000000, methods: ['esmm'], backend };
const b = await createDemoBackend(backend);
const r = await new DemoSession(settings, b).run();
await releaseBackend(b);
console.log(JSON.stringify({ steps: r.steps, seconds: r.stepSeconds.reduce((a, s) => a + s, 0) }));
`,
    );
    const run = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.error, 'the process did not exit within 30 s of starting').toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim()) as { steps: number; seconds: number };
    expect(out.steps).toBe(30);
    // Longer than the 30 ms between the page's yields, so the session yielded while it trained.
    expect(out.seconds).toBeGreaterThan(0.03);
  });
});
