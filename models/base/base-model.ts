/**
 * The base-model interface: a tower that maps embedded fields to one logit per row, and a
 * registry of typed, declared options so that every frame builds any tower by name and the
 * test suites check every registered model.
 */
import { nn, Rng, type Tensor } from '../../core/index.js';
import type { DType } from '../../kernels/index.js';
import { checks, validateOptions, type OptionSpec, type OptionSpecs } from '../options.js';
import { concatFields, type TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';

/** The settings every tower understands (shared by all base models); each model's own extend these. */
export interface BaseModelOptions {
  /** Hidden sizes of the tower's MLP. */
  hidden?: readonly number[];
  /** Activation of the hidden layers (`prelu` as the reference code; the paper text says ReLU). */
  activation?: 'prelu' | 'relu';
  /** Dropout after each hidden activation (0: none). */
  dropout?: number;
  /**
   * Width of the output (1, one logit, when absent). Set by the multi-task frames, not by users: a
   * wider output makes the model a trunk that serves as a shared bottom or an expert.
   */
  outFeatures?: number;
  /** Generator for the initial weights (the frame passes a forked one to each tower). */
  rng?: Rng;
  dtype?: DType;
}

/** Defaults of the shared tower settings: the paper's 200-80 towers after the embedding layer (360-200-80-2, the softmax pair as one logit). */
export const TOWER_DEFAULTS = {
  hidden: [200, 80] as readonly number[],
  activation: 'prelu' as 'prelu' | 'relu',
  dropout: 0,
} as const;

/** The settings a frame passes to each tower itself, unchecked: generator, dtype and output width. */
export const FRAME_KEYS = ['rng', 'dtype', 'outFeatures'] as const;
/** One of {@link FRAME_KEYS}. */
export type FrameKeys = (typeof FRAME_KEYS)[number];

/** Declared shared tower settings; the {@link FRAME_KEYS} are the frame's, passed through unchecked. */
export const TOWER_OPTIONS: OptionSpecs<Omit<BaseModelOptions, FrameKeys>> = {
  hidden: { help: 'hidden sizes of the tower MLP', default: TOWER_DEFAULTS.hidden, check: checks.sizes },
  activation: {
    help: 'activation of the hidden layers',
    default: TOWER_DEFAULTS.activation,
    check: checks.oneOf(['prelu', 'relu']),
  },
  dropout: {
    help: 'dropout after each hidden activation',
    default: TOWER_DEFAULTS.dropout,
    check: checks.number(0, 0.999),
  },
};

/**
 * Options of each registered base model by name. A model file adds its entry by declaration merging,
 * so that `createModel({ base, tower })` checks the tower options at compile time as well:
 *
 *   declare module './base-model.js' { interface BaseModelOptionsByName { din: DinOptions } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by declaration merging
export interface BaseModelOptionsByName {}

/** Names of the base models known to the type system. */
export type BaseModelName = keyof BaseModelOptionsByName;

/** Options of any registered base model (what `createModel`'s `tower` accepts). */
export type AnyBaseModelOptions = BaseModelOptions | BaseModelOptionsByName[BaseModelName];

/** A tower: embedded fields in, one logit per row out, shape [batch, 1] ([batch, outFeatures] as a trunk). */
export abstract class BaseModel extends nn.Module {
  /**
   * `options` are checked against the class's registration here, so a model built directly rather than
   * through {@link createBaseModel} rejects an unknown option too (an unregistered subclass is not checked).
   */
  constructor(options: object = {}) {
    super();
    checkRegisteredOptions(this, options);
  }
  /** Registry name of the model (from its registration, so it is written once). */
  get kind(): string {
    return kinds.get(this.constructor) ?? this.constructor.name;
  }
  /** Logits [batch, 1]. */
  abstract forward(input: TowerInput): Tensor;
}

/** Width of each field's vector as the tower receives it (from `SharedEmbedding.fieldDims()`). */
export type InputDims = ReadonlyMap<string, number>;

/** A base model's class: built from the schema, its options and the width of each field's input. */
export type BaseModelClass<O extends BaseModelOptions> = new (
  schema: Schema,
  options: O,
  inputDims: InputDims,
) => BaseModel;

/** A model's own options: those beyond the shared {@link BaseModelOptions}. */
export type OwnOptions<O extends BaseModelOptions> = Omit<O, keyof BaseModelOptions>;

/** What a base model declares when it registers. */
export interface BaseModelRegistration<O extends BaseModelOptions> {
  /** One line: what the model is and its paper. */
  summary: string;
  /** Its own options (beyond the shared ones), each with help, default and check. */
  options: OptionSpecs<OwnOptions<O>>;
  /**
   * Option sets that exercise each of its code paths at small sizes; the gradient-check and learning
   * suites run every one (default: the model's defaults alone).
   */
  variants?: readonly Omit<O, 'rng' | 'dtype'>[];
  /** Replace an earlier registration of the same name instead of failing. */
  replace?: boolean;
}

/** A registered base model as the registry holds it. */
export interface BaseModelInfo {
  name: string;
  summary: string;
  /** Shared and own options together. */
  options: Readonly<Record<string, OptionSpec<unknown>>>;
  variants: readonly Record<string, unknown>[];
}

interface Entry extends BaseModelInfo {
  model: BaseModelClass<BaseModelOptions>;
}

const registry = new Map<string, Entry>();
const kinds = new Map<unknown, string>();

/**
 * Make a base model available by name, with its declared options: `createBaseModel` rejects any other
 * option naming the model and the option. A second registration under one name is an error unless `replace`.
 */
export function registerBaseModel<O extends BaseModelOptions>(
  name: string,
  model: BaseModelClass<O>,
  registration: BaseModelRegistration<O>,
): void {
  if (registry.has(name) && !registration.replace)
    throw new Error(`registerBaseModel: '${name}' is already registered`);
  for (const key of Object.keys(registration.options))
    if (key in TOWER_OPTIONS || (FRAME_KEYS as readonly string[]).includes(key))
      throw new Error(`registerBaseModel: '${name}' redeclares the shared option '${key}'`);
  registry.set(name, {
    name,
    summary: registration.summary,
    options: { ...TOWER_OPTIONS, ...registration.options } as Record<string, OptionSpec<unknown>>,
    variants: registration.variants ?? [{}],
    // The options are validated against the declaration before the class sees them.
    model: model as unknown as BaseModelClass<BaseModelOptions>,
  });
  kinds.set(model, name);
}

/** Names of the registered base models, in registration order. */
export function listBaseModels(): string[] {
  return [...registry.keys()];
}

/** A registered base model's summary, declared options and test variants. */
export function baseModelInfo(name: string): BaseModelInfo {
  const entry = registry.get(name);
  if (!entry) {
    throw new Error(
      `no base model '${name}'; registered: ${listBaseModels().join(', ') || 'none'} (import models/index.js for the built-in ones)`,
    );
  }
  const { model: _model, ...info } = entry;
  return info;
}

/** Check options against a registered base model's declaration (unknown or malformed ones throw). */
export function validateBaseModelOptions(name: string, options: object): void {
  validateOptions(`base model '${name}'`, options, baseModelInfo(name).options, FRAME_KEYS);
}

/**
 * Check a model's options against its class's registration, for a constructor called directly rather
 * than through {@link createBaseModel}; an unregistered class (e.g. a subclass) is not checked.
 */
export function checkRegisteredOptions(model: BaseModel, options: object): void {
  const name = kinds.get(model.constructor);
  if (name !== undefined) validateBaseModelOptions(name, options);
}

/** Build a registered base model; an option it does not declare is an error naming the model and the option. */
export function createBaseModel(
  name: string,
  schema: Schema,
  options: AnyBaseModelOptions,
  inputDims: InputDims,
): BaseModel {
  validateBaseModelOptions(name, options);
  return new (registry.get(name)!.model)(schema, options, inputDims);
}

// Beside TowerInput, whose concatenation uses it too; exported here with the rest of a base model's kit.
export { concatFields };

/** Sum of the widths of the named fields (all when omitted). */
export function totalWidth(inputDims: InputDims, fields?: readonly string[]): number {
  const names = fields ?? [...inputDims.keys()];
  return names.reduce((n, name) => {
    const w = inputDims.get(name);
    if (w === undefined) throw new Error(`totalWidth: no field '${name}' in the input dims`);
    return n + w;
  }, 0);
}

/** Options of {@link towerMlp}. */
export interface TowerMlpOptions {
  /** End in the 1-unit logit layer (default true); false leaves the hidden blocks only, a trunk of width {@link trunkWidth}. */
  logit?: boolean;
}

/** The MLP of a tower from the shared options: the hidden blocks, then (unless `logit: false`) a 1-unit logit layer. */
export function towerMlp(inFeatures: number, options: BaseModelOptions, mlp: TowerMlpOptions = {}): nn.Sequential {
  return nn.mlp(inFeatures, options.hidden ?? TOWER_DEFAULTS.hidden, {
    activation: options.activation ?? TOWER_DEFAULTS.activation,
    dropout: options.dropout ?? TOWER_DEFAULTS.dropout,
    outFeatures: (mlp.logit ?? true) ? (options.outFeatures ?? 1) : undefined,
    rng: options.rng ?? new Rng(0),
    dtype: options.dtype,
  });
}

/**
 * The tower MLP over every field's vector, concatenated in schema order: the ESMM tower's network and
 * the deep part of DeepFM and DIN. Its layers are those of {@link towerMlp}.
 */
export class FieldsMlp extends nn.Sequential {
  constructor(inputDims: InputDims, options: BaseModelOptions, mlp: TowerMlpOptions = {}) {
    super(...towerMlp(totalWidth(inputDims), options, mlp).layers);
  }
  /** The network applied to the fields' vectors: logits [batch, 1] (or [batch, trunk width] without the logit). */
  forwardFields(pooled: ReadonlyMap<string, Tensor>): Tensor {
    return this.forward(concatFields(pooled));
  }
}

/** Width of a headless {@link towerMlp}'s output: its last hidden size (the input width without hidden layers). */
export function trunkWidth(inFeatures: number, options: BaseModelOptions): number {
  const hidden = options.hidden ?? TOWER_DEFAULTS.hidden;
  return hidden.length ? hidden[hidden.length - 1] : inFeatures;
}
