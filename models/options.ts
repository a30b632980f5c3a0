/**
 * Declared options of the registries (base models, methods): each option's help, default and check,
 * written once, typed against the options interface, so that a misspelt or malformed option fails
 * with the owner's and the option's name wherever it enters (code, `--base-options` JSON, a config file).
 */

/** How one option is described and checked. */
export interface OptionSpec<T> {
  /** One line for `--help` and the docs. */
  help: string;
  /** The default shown by `--help` (the value itself lives in the owner's DEFAULTS object). */
  default?: T;
  /** Why a value is wrong (e.g. `must be one of none, softmax`), or undefined when it is fine. */
  check?: (value: unknown) => string | undefined;
  /** The keys of an object-valued option, checked the same way. */
  fields?: NestedSpecs<T>;
}

/** The specs of an object-valued option's keys ({@link OptionSpec.fields}); never for arrays and scalars. */
export type NestedSpecs<T> =
  NonNullable<T> extends readonly unknown[]
    ? never
    : NonNullable<T> extends object
      ? OptionSpecs<NonNullable<T>>
      : never;

/** One spec per key of `O`, none missing and none extra (object literals get excess-property checks). */
export type OptionSpecs<O> = { readonly [K in keyof O]-?: OptionSpec<NonNullable<O[K]>> };

/** A plain object (not an array, not a class instance such as a generator). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Check `options` against `specs`: an unknown key, a value failing its check, or a non-object where
 * fields are declared throws `${owner}: …` naming the option by its dotted path. Keys in `passThrough`
 * (e.g. the generator and dtype the frame hands every tower) are accepted unchecked.
 */
export function validateOptions(
  owner: string,
  options: object,
  specs: Readonly<Record<string, OptionSpec<unknown>>>,
  passThrough: readonly string[] = [],
  path = '',
): void {
  for (const [key, value] of Object.entries(options)) {
    const name = path + key;
    const spec = specs[key];
    if (!spec) {
      if (path === '' && passThrough.includes(key)) continue;
      const known = Object.keys(specs);
      throw new Error(
        `${owner}: unknown option '${name}'; ${known.length ? `options: ${known.map((k) => path + k).join(', ')}` : 'it takes no options'}`,
      );
    }
    if (value === undefined) continue;
    if (spec.fields) {
      if (!isPlainObject(value)) throw new Error(`${owner}: option '${name}' must be an object, got ${show(value)}`);
      validateOptions(owner, value, spec.fields as Record<string, OptionSpec<unknown>>, [], `${name}.`);
    }
    const complaint = spec.check?.(value);
    if (complaint !== undefined) throw new Error(`${owner}: option '${name}' ${complaint}, got ${show(value)}`);
  }
}

/** A value as it would be typed in JSON, shortened. */
function show(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The usual checks, each returning the complaint of {@link OptionSpec.check}. */
export const checks = {
  /** A number in [min, max]. */
  number(min = -Infinity, max = Infinity): (v: unknown) => string | undefined {
    return (v) => (typeof v === 'number' && v >= min && v <= max ? undefined : `must be a number in [${min}, ${max}]`);
  },
  /** An integer ≥ min. */
  integer(min = -Infinity): (v: unknown) => string | undefined {
    return (v) => (Number.isInteger(v) && (v as number) >= min ? undefined : `must be an integer ≥ ${min}`);
  },
  /** A list of positive integers (layer sizes). */
  sizes(v: unknown): string | undefined {
    return Array.isArray(v) && v.every((s) => Number.isInteger(s) && s > 0)
      ? undefined
      : 'must be a list of positive integers';
  },
  /** One of the given strings. */
  oneOf(values: readonly string[]): (v: unknown) => string | undefined {
    return (v) => (typeof v === 'string' && values.includes(v) ? undefined : `must be one of ${values.join(', ')}`);
  },
  /** A list of pairs of strings (e.g. crossed field names). */
  stringPairs(v: unknown): string | undefined {
    return Array.isArray(v) &&
      v.every((p) => Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === 'string'))
      ? undefined
      : 'must be a list of [string, string] pairs';
  },
};

/** `--help` lines of declared options: `name  help (default …)`, nested options by dotted path. */
export function describeOptions(specs: Readonly<Record<string, OptionSpec<unknown>>>, path = ''): string[] {
  const lines: string[] = [];
  for (const [key, spec] of Object.entries(specs)) {
    const d = spec.default === undefined ? '' : ` (default ${JSON.stringify(spec.default)})`;
    lines.push(`${path}${key}: ${spec.help}${d}`);
    if (spec.fields)
      lines.push(...describeOptions(spec.fields as Record<string, OptionSpec<unknown>>, `${path}${key}.`));
  }
  return lines;
}
