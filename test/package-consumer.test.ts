/**
 * The package as a user receives it: `npm pack`, a default install of the tarball into an empty
 * project, every TypeScript snippet of the README compiled there under `strict` with
 * `skipLibCheck: false` (so the shipped .d.ts files are checked too) and run, the `esmm` bin run
 * through npx, and the README tour bundled with esbuild for browsers and run in headless Chromium.
 * gpu.js, an optional peer, is absent from the default install; the gpu backend must then say
 * what to install, and work once gpu.js is there.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM as chromium, openChromium, serveScripts } from './helpers/chromium.js';
import { typeScriptBlocks } from './helpers/markdown.js';
import { emptyProject, npmInstall, packTarball, ROOT, run, treeBytes } from './helpers/package-tarball.js';

/** The install budget of the package without its optional peers. */
const DEFAULT_INSTALL_BUDGET = 5_000_000;
/** CI lists the modes it requires; there a missing Chromium fails instead of skipping. */
const browserRequired = (process.env.ESMM_REQUIRE_MODES ?? '').trim() !== '';

/** What a user's strict project sets; no @types/node, so the package's types may not lean on them. */
const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2022', 'DOM'],
    types: [],
    strict: true,
    skipLibCheck: false,
    outDir: 'out',
    rootDir: 'src',
  },
  include: ['src'],
};

let work = '';
let app = '';
let snippets: string[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'esmm-consumer-'));
  const tarball = packTarball(work);
  app = join(work, 'app');
  emptyProject(app);
  npmInstall(app, [tarball], ['--prefer-offline']);
  mkdirSync(join(app, 'src'));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  // Every entry point's types, checked like the README's (type-only: gpu.js is not installed).
  const exportsMap = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: object }).exports;
  const entries = Object.keys(exportsMap).map((key) => `esmm-ts${key.slice(1)}`);
  writeFileSync(
    join(app, 'src', 'entries.ts'),
    entries.map((e, i) => `import type * as entry${i} from '${e}';`).join('\n') +
      `\nexport type Entries = [${entries.map((_, i) => `typeof entry${i}`).join(', ')}];\n`,
  );
  snippets = typeScriptBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((code, i) => {
    const name = `readme-${i + 1}`;
    writeFileSync(join(app, 'src', `${name}.ts`), `${code}\nexport {};\n`);
    return name;
  });
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs an ES module written into the consumer project, from its folder. */
function node(name: string, source: string): string {
  writeFileSync(join(app, name), source);
  return run(process.execPath, [name], app);
}

describe('the packed package in a strict consumer project', () => {
  it('installs under the 5 MB budget, without any of its optional peers', () => {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules', 'esmm-ts', 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    const peers = Object.keys(manifest.peerDependencies ?? {});
    expect(peers).toContain('gpu.js');
    for (const peer of peers) {
      expect(manifest.peerDependenciesMeta?.[peer]?.optional, `${peer} is an optional peer`).toBe(true);
      expect(existsSync(join(app, 'node_modules', peer)), `${peer} is not installed by default`).toBe(false);
    }
    const top = readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'));
    expect(top).toEqual(expect.arrayContaining(['esmm-ts', ...Object.keys(manifest.dependencies ?? {})]));
    expect(treeBytes(join(app, 'node_modules'))).toBeLessThan(DEFAULT_INSTALL_BUDGET);
  });

  it('compiles every TypeScript snippet of the README, and every entry point, against the shipped .d.ts files', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(2);
    run(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], app);
    expect(existsSync(join(app, 'out', 'entries.js'))).toBe(true);
    for (const name of snippets) expect(existsSync(join(app, 'out', `${name}.js`)), name).toBe(true);
  });

  it('runs every compiled README snippet', () => {
    for (const name of snippets) run(process.execPath, [join('out', `${name}.js`)], app);
  });

  it('loads every entry point without the optional peers, which say what to install when asked for', () => {
    const out = node(
      'gpu-missing.mjs',
      `import { setBackendAsync, listBackends } from 'esmm-ts/kernels';
       await import('esmm-ts'); await import('esmm-ts/core'); await import('esmm-ts/models'); await import('esmm-ts/kernels/wasm'); await import('esmm-ts/serving');
       console.log(listBackends().join(','));
       await setBackendAsync('gpu').then(() => console.log('loaded?'), (e) => console.log(e.message));
       await import('esmm-ts/kernels/gpu').then(() => console.log('loaded?'), (e) => console.log(e.message));
       const { loadOnnxRuntime } = await import('esmm-ts/serving');
       await loadOnnxRuntime().then(() => console.log('loaded?'), (e) => console.log(e.message));`,
    );
    expect(out).toContain('reference,wasm,gpu');
    expect(out).toContain(
      'the gpu backend needs gpu.js, an optional peer dependency of esmm-ts that is not installed: npm install gpu.js',
    );
    expect(out).toMatch(/Cannot find package 'gpu.js'/);
    expect(out).toContain(
      'the ONNX Runtime engine needs onnxruntime-node, an optional peer dependency of esmm-ts that is not installed: ' +
        'npm install onnxruntime-node',
    );
    expect(out).not.toContain('loaded?');
  });

  it('runs the esmm bin through npx: --help, a small train and its ONNX export', () => {
    expect(run('npx', ['esmm', '--help'], app)).toMatch(/^usage: esmm <command>/m);
    const args = ['--train-rows', '3000', '--test-rows', '2000', '--hidden', '8', '--out', 'run/model.safetensors'];
    expect(run('npx', ['esmm', 'train', ...args], app)).toMatch(/trained esmm\/mlp on wasm/);
    expect(existsSync(join(app, 'run', 'model.safetensors'))).toBe(true);
    // ONNX export needs no optional peer; serving it through ONNX Runtime does.
    expect(run('npx', ['esmm', 'export', '--model', 'run/model.safetensors'], app)).toMatch(/exported esmm\/mlp → /);
    expect(existsSync(join(app, 'run', 'model.onnx'))).toBe(true);
  });

  it('bundles the README tour for browsers with esbuild and runs it in headless Chromium', async () => {
    if (!existsSync(chromium)) {
      if (browserRequired) throw new Error(`${chromium} not found, and ESMM_REQUIRE_MODES asks for browser checks`);
      console.warn(`package consumer: skipping the browser tour: ${chromium} not found`);
      return;
    }
    const { build } = await import('esbuild');
    const files = new Map<string, string>();
    for (const name of snippets) {
      const bundle = await build({
        entryPoints: [join(app, 'src', `${name}.ts`)],
        absWorkingDir: app,
        bundle: true,
        write: false,
        format: 'esm',
        platform: 'browser',
        logLevel: 'silent',
      }).catch((error: { errors?: { text: string }[] }) => {
        // A Node built-in newly imported by the package needs an entry in its `browser` field.
        const texts = (error.errors ?? []).map((e) => e.text).join('; ');
        throw new Error(`esbuild could not bundle ${name} for browsers: ${texts || String(error)}`);
      });
      files.set(`/${name}.js`, bundle.outputFiles[0].text);
    }
    const page = `<!doctype html><script type="module">
      const results = [];
      for (const name of ${JSON.stringify(snippets)}) {
        try { await import('/' + name + '.js'); results.push(name + ': ok'); }
        catch (e) { results.push(name + ': ' + (e && e.stack || e)); }
      }
      globalThis.esmmTour = results;
    </script>`;
    const results = await inChromium(files, page);
    expect(results).toEqual(snippets.map((name) => `${name}: ok`));
  });

  it('with gpu.js installed, loads the gpu backend on first use and through esmm-ts/kernels/gpu', () => {
    symlinkSync(join(ROOT, 'node_modules', 'gpu.js'), join(app, 'node_modules', 'gpu.js'), 'dir');
    const out = node(
      'gpu-present.mjs',
      `import { tensor, matmul } from 'esmm-ts/core';
       import { setBackendAsync, setBackend } from 'esmm-ts/kernels';
       const backend = await setBackendAsync('gpu', { mode: 'cpu' });
       const y = matmul(tensor([[1, 2], [3, 4]]), tensor([[1], [1]]));
       console.log(backend.name, y.toArray().join(','));
       const { GpuBackend } = await import('esmm-ts/kernels/gpu');
       console.log(setBackend('gpu', { mode: 'cpu' }) instanceof GpuBackend);`,
    );
    expect(out.trim().split('\n')).toEqual(['gpu:cpu 3,7', 'true']);
  });
});

/** Serves `files` (and `page` at /) on 127.0.0.1, opens the page in Chromium and returns `esmmTour`. */
async function inChromium(files: Map<string, string>, page: string): Promise<string[]> {
  const server = await serveScripts(page, files);
  try {
    const session = await openChromium(server.url);
    try {
      await session.page.waitForFunction(() => 'esmmTour' in globalThis, undefined, { timeout: 120_000 });
      expect(session.pageErrors).toEqual([]);
      return await session.page.evaluate(() => (globalThis as unknown as { esmmTour: string[] }).esmmTour);
    } finally {
      await session.close();
    }
  } finally {
    await server.close();
  }
}
