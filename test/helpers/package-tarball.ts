/**
 * The package as npm ships it: a fresh build packed with `npm pack`, and a default install of
 * that tarball into an empty project. Shared by the consumer test and the install-size benchmark.
 *
 * The build goes to a staging folder (package.json, README.md and dist/), never to the working
 * tree's dist/, so a test run does not disturb a build in progress; `npm pack` there applies the
 * package's own `files`, `exports` and `bin`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest folder above this file (or its bundle) with esmm-ts's package.json. */
export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'esmm-ts')
      return dir;
    if (dirname(dir) === dir) throw new Error(`no esmm-ts package.json above ${from}`);
  }
}
const bin = (name: string): string => join(ROOT, 'node_modules', '.bin', name);

/** Runs a command, returning its stdout; a failure carries the command's output in the message. */
export function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(command, args, {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${command} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
    );
  }
}

/** Bytes of the files under `dir` (symbolic links not followed), as `du --apparent-size` counts them. */
export function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** Builds the package into `work/stage` and packs it into `work`; returns the tarball's path. */
export function packTarball(work: string): string {
  const stage = join(work, 'stage');
  mkdirSync(stage, { recursive: true });
  for (const file of ['package.json', 'README.md']) copyFileSync(join(ROOT, file), join(stage, file));
  run(bin('tsc'), ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')], ROOT);
  const out = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], stage);
  const [{ filename }] = JSON.parse(out) as { filename: string }[];
  return join(work, filename);
}

/** An empty ES-module project at `dir`, as `npm init` would leave it. */
export function emptyProject(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2),
  );
}

/** `npm install <specs>` in `dir`; returns the seconds it took. */
export function npmInstall(dir: string, specs: string[], extra: string[] = []): number {
  const t0 = performance.now();
  run('npm', ['install', '--no-audit', '--no-fund', '--no-update-notifier', ...extra, ...specs], dir);
  return (performance.now() - t0) / 1000;
}
