/**
 * Batches from Parquet files for one epoch: a seeded shuffle of the order of files and row groups,
 * then the shuffle buffer and collation of `batchRows`. Runs in the training thread or, through
 * `parquet-worker.ts`, in a worker; its settings are plain data so they can cross to the worker.
 */
import { ParquetRowReader, ParquetVocabulary, type ColumnsSpec } from './parquet.js';
import { batchRows, type BatchWithExtras } from './rows.js';

/** Everything a Parquet batch stream needs, as plain (structured-cloneable) data. */
export interface ParquetStreamConfig {
  files: string[];
  spec: ColumnsSpec;
  /** `ParquetVocabulary.toJSON()`, when a field's ids are `"vocabulary"`. */
  vocabulary?: unknown;
  limit?: number;
  batchSize: number;
  /** Shuffle-buffer rows (0 keeps the order). */
  shuffleBuffer: number;
  /** Shuffle the order of files and row groups each epoch. */
  shuffleOrder: boolean;
  seed: number;
  dropLast?: boolean;
}

/** Seeds of an epoch: for the order of row groups, and for the shuffle buffer. */
export function epochSeed(seed: number, epoch: number): number {
  return (seed * 7919 + epoch) >>> 0;
}

/** Builds the reader of a config once, and streams its batches epoch by epoch. */
export class ParquetStream {
  readonly reader: ParquetRowReader;

  constructor(readonly config: ParquetStreamConfig) {
    const vocabulary =
      config.vocabulary === undefined ? undefined : ParquetVocabulary.fromJSON(config.vocabulary, 'vocabulary');
    this.reader = new ParquetRowReader(config.files, {
      spec: config.spec,
      ...(vocabulary ? { vocabulary } : {}),
      ...(config.limit !== undefined ? { limit: config.limit } : {}),
    });
  }

  /** The batches of `epoch` (0 for evaluation). */
  batches(epoch: number): AsyncGenerator<BatchWithExtras> {
    const c = this.config;
    const seed = epochSeed(c.seed, epoch);
    return batchRows(this.reader.schema, this.reader.rows(c.shuffleOrder ? seed : undefined), {
      batchSize: c.batchSize,
      shuffleBuffer: c.shuffleBuffer,
      seed,
      dropLast: c.dropLast ?? false,
      // The reader checked every id against its field's table already.
      checkIds: false,
    });
  }
}
