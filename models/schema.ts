/**
 * Feature schema and batches (DeepCTR-style feature columns).
 *
 * A schema declares every input field once: its kind, vocabulary, embedding
 * size, pooling, which table it shares and its group. A batch carries, per
 * field, typed arrays ready for the embedding kernels, plus the two labels.
 */
import type { BagMode } from '../kernels/index.js';

/** Which part of the feature space a field describes (Ali-CCP's groups). */
export type FieldGroup = 'user' | 'item' | 'context' | 'cross';

/** A field with one id per row (e.g. item id, gender). */
export interface CategoricalField {
  kind: 'categorical';
  name: string;
  /** Number of embedding rows (vocabulary size or hash buckets). Ids must lie in [0, vocabSize). */
  vocabSize: number;
  /** Embedding width; default 18 as in the paper. */
  embeddingDim?: number;
  /** Name of the table this field reads; fields with the same table share rows. Default: the field's own name. */
  table?: string;
  group: FieldGroup;
  /** DIN's query: the candidate item this field identifies. */
  isTarget?: boolean;
}

/** A field with any number of ids per row, each with an optional value (e.g. behaviour counts). */
export interface BagField {
  kind: 'bag';
  name: string;
  vocabSize: number;
  embeddingDim?: number;
  table?: string;
  group: FieldGroup;
  /** Pooling of the bag; default `sum`, as the paper. */
  pooling?: BagMode;
  /** Whether the batch carries per-id values used as weights. */
  weighted?: boolean;
  /** DIN's behaviour sequence (attended against the target field with the same table). */
  isSequence?: boolean;
}

/** A real-valued field, fed to the towers as is. */
export interface NumericField {
  kind: 'numeric';
  name: string;
  group: FieldGroup;
  /** Width of the value vector; default 1. */
  dim?: number;
}

/** Any field. */
export type FieldSpec = CategoricalField | BagField | NumericField;

/** Fields of a model's input, in order. */
export interface Schema {
  fields: FieldSpec[];
}

/** Default embedding width of the paper. */
export const DEFAULT_EMBEDDING_DIM = 18;

/** Per-field data of one batch. */
export type FieldBatch =
  | { kind: 'categorical'; ids: Int32Array }
  | { kind: 'bag'; ids: Int32Array; offsets: Int32Array; values?: Float32Array }
  | { kind: 'numeric'; values: Float32Array };

/** One mini-batch: typed arrays per field and the labels, all of `size` rows. */
export interface Batch {
  size: number;
  fields: Record<string, FieldBatch>;
  /** 1 if the impression was clicked. */
  click: Float32Array;
  /** 1 if it converted (only possible after a click). */
  conversion: Float32Array;
  /** Optional row ids of the user, for GAUC. */
  userIds?: Int32Array;
}

/** The table a field reads (its own name unless it shares one). */
export function tableOf(field: CategoricalField | BagField): string {
  return field.table ?? field.name;
}

/** A field's embedding width. */
export function embeddingDimOf(field: CategoricalField | BagField): number {
  return field.embeddingDim ?? DEFAULT_EMBEDDING_DIM;
}
