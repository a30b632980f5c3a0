/**
 * Command-line flags: each command declares its flags once (kind, help, default, bounds); parsing goes
 * through Node's `util.parseArgs` and every value is checked against its declaration, so a typo, an empty
 * number, a hex or fractional count, or an out-of-range value is a usage error naming the flag.
 */
import { parseArgs } from 'node:util';

/** A command-line usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {}

export type FlagKind = 'number' | 'integer' | 'string' | 'boolean' | 'list';

/** One flag's declaration; `min`/`max` bound numbers (inclusive), `above` from below (exclusive). */
export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: number | string | boolean;
  min?: number;
  max?: number;
  above?: number;
}

export type FlagSpecs = Record<string, FlagSpec>;
export type FlagValues = Record<string, number | string | boolean | string[] | undefined>;

// Plain decimal notation only: `Number()` would also take '', '0x2' and ' 3 '.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** One number of a comma-separated list flag (e.g. `--hidden 64,32`), in plain decimal notation. */
export function listNumber(flag: string, raw: string, integer: boolean): number {
  return parseNumber(flag, { kind: integer ? 'integer' : 'number', help: '' }, raw);
}

function parseNumber(name: string, spec: FlagSpec, raw: string): number {
  const where = `option --${name}`;
  if (!DECIMAL.test(raw)) throw new UsageError(`${where} needs a decimal number, got '${raw}'`);
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new UsageError(`${where} needs a finite number, got '${raw}'`);
  if (spec.kind === 'integer' && !Number.isSafeInteger(n))
    throw new UsageError(`${where} needs a whole number, got '${raw}'`);
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`${where} must be ≥ ${spec.min}, got ${raw}`);
  if (spec.max !== undefined && n > spec.max) throw new UsageError(`${where} must be ≤ ${spec.max}, got ${raw}`);
  if (spec.above !== undefined && !(n > spec.above))
    throw new UsageError(`${where} must be > ${spec.above}, got ${raw}`);
  return n;
}

function convert(name: string, spec: FlagSpec, raw: string | boolean): FlagValues[string] {
  if (spec.kind === 'boolean') return raw === true;
  const value = String(raw);
  if (spec.kind === 'number' || spec.kind === 'integer') return parseNumber(name, spec, value);
  if (spec.kind === 'list')
    return value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
  if (value === '') throw new UsageError(`option --${name} needs a value`);
  return value;
}

/** Parse `--name value`, `--name=value` and `--flag` against `spec`; defaults fill what is not given. */
export function parseFlags(command: string, args: readonly string[], spec: FlagSpecs): FlagValues {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, s] of Object.entries(spec)) options[name] = { type: s.kind === 'boolean' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (e) {
    const known = Object.keys(spec)
      .map((k) => `--${k}`)
      .join(', ');
    throw new UsageError(`${(e as Error).message}; options of ${command}: ${known}`);
  }
  const values: FlagValues = {};
  for (const [name, s] of Object.entries(spec)) {
    const given = parsed.values[name];
    const raw = Array.isArray(given) ? given[given.length - 1] : given;
    if (raw !== undefined) values[name] = convert(name, s, raw);
    else if (s.default !== undefined) values[name] = convert(name, s, s.default as string | boolean);
  }
  return values;
}

/** The `--help` text of a command, with every default as declared. */
export function helpText(command: string, summary: string, spec: FlagSpecs): string {
  const lines = Object.entries(spec).map(([name, s]) => {
    const d = s.default === undefined ? '' : ` (default ${String(s.default)})`;
    return `  --${name}${s.kind === 'boolean' ? '' : ` <${s.kind}>`}`.padEnd(29) + ` ${s.help}${d}`;
  });
  return `usage: esmm ${command} [options]\n\n${summary}\n\noptions:\n${lines.join('\n')}`;
}

/** A parsed number (declared with a default or checked by the caller). */
export const num = (v: FlagValues, k: string): number => v[k] as number;
/** A parsed optional number. */
export const optNum = (v: FlagValues, k: string): number | undefined => v[k] as number | undefined;
/** A parsed optional string. */
export const str = (v: FlagValues, k: string): string | undefined => v[k] as string | undefined;
/** A parsed list (comma-separated). */
export const list = (v: FlagValues, k: string): string[] => (v[k] as string[] | undefined) ?? [];

/** One subcommand of `esmm`: its flags, and what it runs (resolving to the exit code). */
export interface Command {
  name: string;
  summary: string;
  flags: FlagSpecs;
  /** The name shown in `--help` when it differs (e.g. `experiment table2`). */
  usage?: string;
  /** More `--help` text after the flags (e.g. the registered models' options). */
  epilog?: () => string;
  run: (args: string[]) => Promise<number>;
}
