/**
 * The base-model interface: a tower that maps embedded fields to one logit per row,
 * and a registry so that the ESMM frame and the baselines can build any tower by name.
 */
import { concat, nn, Rng, type Tensor } from '../../core/index.js';
import type { DType } from '../../kernels/index.js';
import type { TowerInput } from '../embedding.js';
import type { Schema } from '../schema.js';

/** Settings every tower understands; model-specific settings ride along under their own keys. */
export interface BaseModelOptions {
  /** Hidden sizes of the tower's MLP (default [200, 80], the paper's). */
  hidden?: readonly number[];
  /** Activation of the hidden layers (default `prelu`, as the reference code; the paper text says ReLU). */
  activation?: 'prelu' | 'relu';
  /** Dropout after each hidden activation (default none). */
  dropout?: number;
  /**
   * Width of the output (default 1: one logit). A wider output makes the model a trunk that
   * the multi-task frames (shared-bottom, MMoE, PLE, AITM) use as a shared bottom or an expert.
   */
  outFeatures?: number;
  /** Generator for the initial weights. */
  rng?: Rng;
  dtype?: DType;
  /** Model-specific settings (e.g. DIN's `attention`), validated by the model that reads them. */
  [option: string]: unknown;
}

/** The paper's tower sizes after the embedding layer (360-200-80-2 with the softmax pair as one logit). */
export const DEFAULT_HIDDEN: readonly number[] = [200, 80];

/** A tower: embedded fields in, one logit per row out, shape [batch, 1] ([batch, outFeatures] as a trunk). */
export abstract class BaseModel extends nn.Module {
  /** Registry name of the model. */
  abstract readonly kind: string;
  /** Logits [batch, 1]. */
  abstract forward(input: TowerInput): Tensor;
}

/** Width of each field's vector as the tower receives it (from `SharedEmbedding.fieldDims()`). */
export type InputDims = ReadonlyMap<string, number>;

/** Builds a tower from the schema, options and the width of each field's input. */
export type BaseModelFactory = (schema: Schema, options: BaseModelOptions, inputDims: InputDims) => BaseModel;

const registry = new Map<string, BaseModelFactory>();

/** Make a base model available by name; a second registration under one name is an error unless `replace`. */
export function registerBaseModel(name: string, factory: BaseModelFactory, options: { replace?: boolean } = {}): void {
  if (registry.has(name) && !options.replace) throw new Error(`registerBaseModel: '${name}' is already registered`);
  registry.set(name, factory);
}

/** Names of the registered base models. */
export function listBaseModels(): string[] {
  return [...registry.keys()];
}

/** Build a registered base model. */
export function createBaseModel(
  name: string,
  schema: Schema,
  options: BaseModelOptions,
  inputDims: InputDims,
): BaseModel {
  const factory = registry.get(name);
  if (!factory) {
    throw new Error(
      `createBaseModel: no base model '${name}'; registered: ${listBaseModels().join(', ') || 'none'} (import models/index.js for the built-in ones)`,
    );
  }
  return factory(schema, options, inputDims);
}

/** Concatenate the named fields' vectors (schema order when omitted) into [batch, Σ widths]. */
export function concatFields(pooled: ReadonlyMap<string, Tensor>, fields?: readonly string[]): Tensor {
  const names = fields ?? [...pooled.keys()];
  const parts = names.map((name) => {
    const t = pooled.get(name);
    if (!t) throw new Error(`concatFields: no field '${name}' in the tower input`);
    return t;
  });
  return parts.length === 1 ? parts[0] : concat(parts, 1);
}

/** Sum of the widths of the named fields (all when omitted). */
export function totalWidth(inputDims: InputDims, fields?: readonly string[]): number {
  const names = fields ?? [...inputDims.keys()];
  return names.reduce((n, name) => {
    const w = inputDims.get(name);
    if (w === undefined) throw new Error(`totalWidth: no field '${name}' in the input dims`);
    return n + w;
  }, 0);
}

/** The MLP of a tower: hidden blocks and a final 1-unit logit layer, from the shared options. */
export function towerMlp(inFeatures: number, options: BaseModelOptions): nn.Sequential {
  const hidden = options.hidden ?? DEFAULT_HIDDEN;
  return nn.mlp(inFeatures, hidden, {
    activation: options.activation ?? 'prelu',
    dropout: options.dropout,
    outFeatures: options.outFeatures ?? 1,
    rng: options.rng ?? new Rng(0),
    dtype: options.dtype,
  });
}
