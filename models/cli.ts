#!/usr/bin/env node
/**
 * The `esmm` executable: simulate data, train, evaluate, score, and run the paper's Table 2 experiment.
 * The commands live in `cli/`, one file each; this file only starts them.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { main } from './cli/index.js';

export * from './cli/index.js';

// Run when executed, not when imported; the real path, because npm starts a bin through a symlink.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  // Whatever escapes a command (an error event of a stream, a rejection nobody awaited) is still one line, never a stack trace.
  const die = (e: unknown): void => {
    console.error(`esmm: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => die(e),
  );
}
