/**
 * The method registry: every method (the paper's Table 2 and any added later) registers a factory
 * with its declared options, so `createModel({ method })`, the CLI and the test suites all build
 * and check whatever is registered, and an unknown option fails naming the method and the option.
 */
import type { DType } from '../../kernels/index.js';
import type { AnyBaseModelOptions } from '../base/base-model.js';
import { validateOptions, type OptionSpec, type OptionSpecs } from '../options.js';
import type { Schema } from '../schema.js';
import type { CvrMethod } from './method.js';

/** Settings every method takes (the frame around the method's own options). */
export interface ModelCommonOptions {
  schema: Schema;
  /** Registered base model of every tower. */
  base?: string;
  /** Options of every tower, checked against the base model's declaration. */
  tower?: AnyBaseModelOptions;
  /** Seed of initial values and of the method's sampling. */
  seed?: number;
  dtype?: DType;
  /** Standard deviation of the embedding initialisation (default `DEFAULT_EMBEDDING_STD`). */
  embeddingStd?: number;
  /** Check each batch against the schema. */
  validate?: boolean;
}

/** Defaults of the common settings, shared by `createModel`, the experiments and the CLI. */
export const MODEL_DEFAULTS = {
  method: 'esmm',
  base: 'mlp',
  seed: 0,
  dtype: 'float32' as DType,
  validate: true,
} as const;

/** Keys of {@link ModelCommonOptions}, with `method`: everything else is a method's own option. */
const COMMON_KEYS: ReadonlySet<string> = new Set([
  'method',
  'schema',
  'base',
  'tower',
  'seed',
  'dtype',
  'embeddingStd',
  'validate',
] satisfies (keyof ModelCommonOptions | 'method')[]);

/**
 * Own options of each registered method by name. A method file adds its entry by declaration merging,
 * so `createModel({ method, … })` checks the method's options at compile time:
 *
 *   declare module './registry.js' { interface MethodOptionsByName { aman: AmanOwnOptions } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface MethodOptionsByName {}

/** A registered method's name. */
export type MethodName = keyof MethodOptionsByName;

/** A method and its own settings, discriminated by `method`. */
export type MethodSpec = { [K in MethodName]: { method: K } & MethodOptionsByName[K] }[MethodName];

/** Options of `createModel`. */
export type CreateModelOptions = ModelCommonOptions & MethodSpec;

/** Builds a method from the common settings and its own (already checked against its declaration). */
export type MethodFactory<O extends object> = (options: ModelCommonOptions & O) => CvrMethod;

/** What a method declares when it registers. */
export interface MethodRegistration<O extends object> {
  /** One line: what the method is and its paper. */
  summary: string;
  /** Its own options, each with help, default and check. */
  options: OptionSpecs<O>;
  /** Option sets the gradient-check and learning suites run (default: the method's defaults alone). */
  variants?: readonly O[];
  /** What the learning suite may expect of the method where it differs from the suite's margins, and why. */
  learning?: LearningExpectation;
  /** Replace an earlier registration of the same name instead of failing. */
  replace?: boolean;
}

/** Margins over chance (AUC 0.5) a method must reach in the learning suite, with the reason they differ. */
export interface LearningExpectation {
  /** On the clicked rows' CVR AUC. */
  cvrMargin?: number;
  /** On the CTCVR AUC. */
  ctcvrMargin?: number;
  /** Why the method is held to these margins rather than the suite's. */
  reason: string;
}

/** A registered method as the registry describes it. */
export interface MethodInfo {
  name: string;
  summary: string;
  options: Readonly<Record<string, OptionSpec<unknown>>>;
  variants: readonly Record<string, unknown>[];
  learning?: LearningExpectation;
}

interface Entry extends MethodInfo {
  factory: MethodFactory<object>;
}

const registry = new Map<string, Entry>();

/**
 * Make a method available to `createModel` by name; a second registration is an error unless `replace`.
 * The name must be in {@link MethodOptionsByName}, which gives the factory and the declaration their type.
 */
export function registerMethod<K extends MethodName>(
  name: K,
  factory: MethodFactory<MethodOptionsByName[K]>,
  registration: MethodRegistration<MethodOptionsByName[K]>,
): void {
  if (registry.has(name) && !registration.replace) throw new Error(`registerMethod: '${name}' is already registered`);
  for (const key of Object.keys(registration.options))
    if (COMMON_KEYS.has(key)) throw new Error(`registerMethod: '${name}' redeclares the common option '${key}'`);
  registry.set(name, {
    name,
    summary: registration.summary,
    options: registration.options as Record<string, OptionSpec<unknown>>,
    variants: (registration.variants ?? [{}]) as readonly Record<string, unknown>[],
    learning: registration.learning,
    // The method's own options are validated against its declaration before the factory sees them.
    factory: factory as unknown as MethodFactory<object>,
  });
}

/** Names of the registered methods, in registration order (the paper's Table 2 order for the built-in ones). */
export function listMethods(): string[] {
  return [...registry.keys()];
}

/** A registered method's summary, declared options and test variants. */
export function methodInfo(name: string): MethodInfo {
  const entry = registry.get(name);
  if (!entry) throw new Error(`unknown method '${name}'; registered: ${listMethods().join(', ') || 'none'}`);
  const { factory: _factory, ...info } = entry;
  return info;
}

/** Check a method's own options (everything but the common settings) against its declaration. */
export function validateMethodOptions(name: string, options: object): void {
  validateOptions(`method '${name}'`, options, methodInfo(name).options);
}

/**
 * Build any registered method by name:
 *
 *   const m = createModel({ method: 'aman', negativeRate: 0.2, schema, base: 'din', tower: { hidden: [200, 80] } });
 *
 * Every method is built from the same base model, tower options, embedding dims (from the schema) and
 * seed, so that comparisons differ only in the method. An option the method does not declare, or one
 * its base model does not, is an error naming the method (or model) and the option.
 */
export function createModel(options: CreateModelOptions): CvrMethod {
  const name: string = options.method;
  const own: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) if (!COMMON_KEYS.has(key)) own[key] = value;
  validateMethodOptions(name, own);
  return registry.get(name)!.factory(options);
}
