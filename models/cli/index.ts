/**
 * The `esmm` command line: one file per command, listed here. A new command is a file exporting a
 * {@link Command} and one line in {@link COMMANDS}; flags, `--help` and errors come from `flags.ts`.
 */
import { calibrateCommand } from './calibrate.js';
import { demoCommand } from './demo.js';
import { evalCommand } from './eval.js';
import { experimentCommand } from './experiment.js';
import { exportCommand } from './export.js';
import { helpText, UsageError, type Command } from './flags.js';
import { predictCommand } from './predict.js';
import { serveCommand } from './serve.js';
import { simulateCommand } from './simulate.js';
import { trainCommand } from './train.js';

export { UsageError, parseFlags, helpText, type Command, type FlagSpec, type FlagSpecs } from './flags.js';
export { runDemo, xorTask } from '../../core/demo.js';

/** Every command, in the order `esmm --help` lists them. */
export const COMMANDS: readonly Command[] = [
  simulateCommand,
  trainCommand,
  evalCommand,
  predictCommand,
  exportCommand,
  serveCommand,
  experimentCommand,
  calibrateCommand,
  demoCommand,
];

function usage(): string {
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`);
  return `esmm: ESMM (Entire Space Multi-Task Model) and its baselines in TypeScript

usage: esmm <command> [options]     (esmm <command> --help for its options)

commands:
${lines.join('\n')}

Backend: --backend or ESMM_BACKEND (wasm by default; reference, gpu).`;
}

/** Entry point; resolves to the process exit code. Errors are printed as one message, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`esmm: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const epilog = command.epilog ? `\n\n${command.epilog()}` : '';
    console.log(`${helpText(command.usage ?? name, command.summary, command.flags)}${epilog}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`esmm ${command.usage ?? name}: ${message}`);
    if (error instanceof UsageError) console.error(`(see: esmm ${name} --help)`);
    return error instanceof UsageError ? 2 : 1;
  }
}
