/**
 * Output paths of the commands, checked before any work starts: a file output must not be a
 * directory or a special file, an output folder must be a folder, and either must be creatable and
 * writable (probed with a real file, since permission bits say nothing about /proc or a read-only
 * mount). Folders are created one level at a time: Node's recursive mkdir can spin forever under /proc.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { removeStaleTemps } from '../checkpoint.js';
import { UsageError } from './flags.js';

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Creates `dir` and its missing parents, one level at a time, failing with a clear error instead of looping. */
function makeDirs(flag: string, dir: string): void {
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    const s = statOrNull(at);
    if (s) {
      if (!s.isDirectory())
        throw new UsageError(
          at === dir
            ? `${flag}: ${dir} exists and is not a folder`
            : `${flag}: ${at} is not a folder, so ${dir} cannot be created`,
        );
      break;
    }
    missing.unshift(at);
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new UsageError(`${flag}: cannot create the folder ${d}: ${(e as Error).message}`);
    }
  }
}

/** Writes and removes a probe file in `dir`, the only reliable test that files can be created there. */
function probeWritable(flag: string, dir: string): void {
  const probe = join(dir, `.esmm-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (e) {
    throw new UsageError(`${flag}: cannot write into ${dir}: ${(e as Error).message}`);
  }
  try {
    unlinkSync(probe);
  } catch {
    // The probe is empty; a leftover is harmless.
  }
}

/**
 * Checks that a file can be written at `path` (given by `flag`), creating its folder; returns the
 * absolute path. Refuses a directory and anything but a regular file (a FIFO would block the write).
 */
export function prepareOutputFile(flag: string, path: string): string {
  const abs = resolve(path);
  const s = statOrNull(abs);
  if (s?.isDirectory()) throw new UsageError(`${flag}: ${path} is a folder; give a file name inside it`);
  if (s && !s.isFile()) throw new UsageError(`${flag}: ${path} exists and is not a regular file`);
  makeDirs(flag, dirname(abs));
  probeWritable(flag, dirname(abs));
  return abs;
}

/** Checks that `path` is (or can be created as) a writable folder; returns the absolute path. */
export function prepareOutputDir(flag: string, path: string): string {
  const abs = resolve(path);
  makeDirs(flag, abs);
  probeWritable(flag, abs);
  return abs;
}

/**
 * Writes a small file atomically (temp file, then rename), so a kill never leaves half a config
 * behind; temp files of the same target left by dead processes are removed first.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await removeStaleTemps(dirname(path), basename(path));
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was written.
    }
    throw e;
  }
}
