// Builds the demo page into static files (dist/demo/): `npm run demo:build`.
//
// The page imports the package only through its public entry points (`esmm-ts`,
// `esmm-ts/core`, `esmm-ts/kernels`, `esmm-ts/models`); esbuild resolves them with the
// `paths` of tsconfig.json, which name the source of each entry of package.json's
// `exports`. Node built-ins that parts of the package use for files (checkpoints on disk,
// the CLI) are replaced by stubs whose every export throws, as a browser bundler does.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** Where the built page goes. */
export const OUT_DIR = join(root, 'dist', 'demo');

/** esbuild plugin: `node:*` (and bare built-in names) become modules whose exports throw when used. */
const nodeStubs = {
  name: 'node-stubs',
  setup(b) {
    const builtins = new Set(builtinModules);
    b.onResolve({ filter: /^[a-z_/:]+$/ }, (args) => {
      const id = args.path.replace(/^node:/, '');
      if (!args.path.startsWith('node:') && !builtins.has(args.path)) return undefined;
      return { path: id, namespace: 'node-stub' };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, async (args) => {
      const names = Object.keys(await import(`node:${args.path}`)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      const lines = names
        .filter((n) => n !== 'default')
        .map((n) => `export const ${n} = unavailable(${JSON.stringify(n)});`);
      return {
        contents:
          `function unavailable(name) { return () => { throw new Error('node:${args.path} ' + name + ` +
          `' is not available in the browser'); }; }\n${lines.join('\n')}\nexport default {};\n`,
        loader: 'js',
      };
    });
  },
};

/** Bundles the page into {@link OUT_DIR}; returns the output directory. */
export async function buildDemo({ minify = process.env.ESMM_DEMO_MINIFY !== '0' } = {}) {
  await mkdir(OUT_DIR, { recursive: true });
  await build({
    entryPoints: { demo: join(here, 'main.ts') },
    bundle: true,
    format: 'esm',
    // gpu.js (the gpu backend's entry) becomes a chunk of its own, loaded when a gpu backend is picked.
    splitting: true,
    platform: 'browser',
    target: 'es2022',
    outdir: OUT_DIR,
    minify,
    sourcemap: true,
    tsconfig: join(root, 'tsconfig.json'),
    plugins: [nodeStubs],
    // The serving entry's ONNX Runtime engine is Node-only (a native addon) and never runs in the page.
    external: ['onnxruntime-node'],
    logLevel: 'warning',
  });
  await copyFile(join(here, 'index.html'), join(OUT_DIR, 'index.html'));
  return OUT_DIR;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const out = await buildDemo();
  console.log(`demo built into ${out} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
