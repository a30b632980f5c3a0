/**
 * What installing the package costs a user: the tarball, a default install (size of
 * node_modules, packages, time with an empty npm cache), the time to import each entry point,
 * and beside them what each optional peer adds when installed on top.
 *
 *   npx rolldown benchmarks/package-install.ts --platform node --format esm --file benchmarks/out/package-install.mjs
 *   node benchmarks/out/package-install.mjs [--repeats 3]
 *
 * Installs run against the npm registry with a fresh cache each time, so they include the
 * download; the peers install with --ignore-scripts (gl's native build is timed by CI, not here).
 * Writes benchmarks/results/package-install.md and .json.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { emptyProject, npmInstall, packTarball, ROOT, run, treeBytes } from '../test/helpers/package-tarball.js';

interface Manifest {
  version: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

interface InstallFigures {
  /** Bytes under node_modules. */
  bytes: number;
  /** Packages under node_modules (scoped ones counted one by one). */
  packages: number;
  /** Seconds of each `npm install`, fresh project and fresh cache each time. */
  seconds: number[];
}

const { values } = parseArgs({ options: { repeats: { type: 'string', default: '3' } } });
const repeats = Number(values.repeats);
if (!Number.isInteger(repeats) || repeats < 1)
  throw new Error(`--repeats needs a positive integer, got ${values.repeats}`);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (bytes: number): string => (bytes / 1e6).toFixed(2);

function countPackages(modules: string): number {
  let n = 0;
  for (const name of readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    n += name.startsWith('@') ? readdirSync(join(modules, name)).length : 1;
  }
  return n;
}

/**
 * `repeats` installs of `specs` (after `before`, untimed, if given), each in a new project with an
 * empty cache; `before` given means `specs` are optional peers, installed without their scripts.
 */
function measure(work: string, label: string, specs: string[], before: string[] = []): InstallFigures {
  const seconds: number[] = [];
  let bytes = 0;
  let packages = 0;
  for (let r = 0; r < repeats; r++) {
    const dir = join(work, `${label}-${r}`);
    const cache = ['--cache', join(dir, '.npm-cache')];
    emptyProject(dir);
    if (before.length > 0) npmInstall(dir, before, cache);
    seconds.push(npmInstall(dir, specs, before.length > 0 ? [...cache, '--ignore-scripts'] : cache));
    bytes = treeBytes(join(dir, 'node_modules'));
    packages = countPackages(join(dir, 'node_modules'));
    if (r < repeats - 1) rmSync(dir, { recursive: true, force: true });
  }
  return { bytes, packages, seconds };
}

/** Median milliseconds of a fresh `node` importing `entry` in `dir` (5 runs). */
function importMs(dir: string, entry: string): number {
  const code = `const t = performance.now(); await import('${entry}'); console.log(performance.now() - t);`;
  const runs = Array.from({ length: 5 }, () => Number(run(process.execPath, ['--input-type=module', '-e', code], dir)));
  return median(runs);
}

const work = mkdtempSync(join(tmpdir(), 'esmm-install-'));
try {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
  const tarball = packTarball(work);
  const tarballBytes = statSync(tarball).size;
  const unpackedBytes = treeBytes(join(work, 'stage'));
  const base = measure(work, 'default', [tarball]);
  const baseDir = join(work, `default-${repeats - 1}`);
  const entries = ['esmm-ts/core', 'esmm-ts', 'esmm-ts/models'];
  const imports = Object.fromEntries(entries.map((e) => [e, importMs(baseDir, e)]));

  const peers: Record<string, InstallFigures & { version: string }> = {};
  for (const peer of Object.keys(manifest.peerDependencies ?? {})) {
    const version = manifest.devDependencies?.[peer] ?? manifest.peerDependencies![peer];
    const figures = measure(work, peer.replace(/[^a-z0-9]/gi, '_'), [`${peer}@${version}`], [tarball]);
    peers[peer] = {
      ...figures,
      version,
      bytes: figures.bytes - base.bytes,
      packages: figures.packages - base.packages,
    };
  }

  const date = new Date().toISOString().slice(0, 10);
  const json = {
    date,
    node: process.version,
    npm: run('npm', ['--version'], work).trim(),
    cores: cpus().length,
    repeats,
    version: manifest.version,
    tarballBytes,
    unpackedBytes,
    defaultInstall: base,
    importMs: imports,
    optionalPeers: peers,
  };
  const results = join(ROOT, 'benchmarks', 'results');
  mkdirSync(results, { recursive: true });
  writeFileSync(join(results, 'package-install.json'), `${JSON.stringify(json, null, 2)}\n`);

  const secs = (f: InstallFigures): string =>
    `${median(f.seconds).toFixed(1)} s (${f.seconds.map((s) => s.toFixed(1)).join(', ')})`;
  const lines = [
    '# Installing esmm-ts: size and time',
    '',
    `Measured ${date} with \`node benchmarks/out/package-install.mjs --repeats ${repeats}\` (see its header), Node ${json.node}, npm ${json.npm}, ` +
      `${json.cores} cores shared with other work, so times are indicative; each install ran in a new project with an empty npm cache, ` +
      'so it includes the download from the npm registry.',
    '',
    `esmm-ts ${manifest.version}: tarball ${mb(tarballBytes)} MB, unpacked ${mb(unpackedBytes)} MB.`,
    '',
    '| install | node_modules | packages | npm install, median (each run) |',
    '| --- | --- | --- | --- |',
    `| \`npm install esmm-ts\` (default) | **${mb(base.bytes)} MB** (goal < 5 MB) | ${base.packages} | ${secs(base)} |`,
    ...Object.entries(peers).map(
      ([peer, f]) =>
        `| then \`npm install ${peer}@${f.version}\` (optional peer) | +${mb(f.bytes)} MB | +${f.packages} | ${secs(f)} |`,
    ),
    '',
    'Optional peers installed with `--ignore-scripts`: install scripts (gl, a dependency of gpu.js, compiles with node-gyp; ' +
      "onnxruntime-node's fetches GPU binaries unless `onnxruntime-node-install=skip`) are not in these times.",
    '',
    'Time for a fresh `node` to import each entry point of the default install (median of 5):',
    '',
    '| entry | import |',
    '| --- | --- |',
    ...Object.entries(imports).map(([e, ms]) => `| \`${e}\` | ${ms.toFixed(0)} ms |`),
    '',
  ];
  writeFileSync(join(results, 'package-install.md'), lines.join('\n'));
  console.log(lines.join('\n'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
