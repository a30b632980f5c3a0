/**
 * Batches from Parquet files for one epoch: a seeded shuffle of the order of files and row groups,
 * then a shuffle buffer of row handles and batches gathered column by column from the decoded row
 * groups (`parquet-gather.ts`). Runs in the training thread or, through `parquet-worker.ts`, in a
 * worker; its settings are plain data so they can cross to the worker.
 */
import { ParquetRowReader, ParquetVocabulary, type ColumnsSpec, type GroupColumns } from './parquet.js';
import { BatchGatherer, BatchPool } from './parquet-gather.js';
import type { BatchWithExtras } from './rows.js';

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
  /** Batch buffers: a batch handed back through {@link recycle} is reused for a later one. */
  readonly pool: BatchPool;

  constructor(readonly config: ParquetStreamConfig) {
    const vocabulary =
      config.vocabulary === undefined ? undefined : ParquetVocabulary.fromJSON(config.vocabulary, 'vocabulary');
    this.reader = new ParquetRowReader(config.files, {
      spec: config.spec,
      ...(vocabulary ? { vocabulary } : {}),
      ...(config.limit !== undefined ? { limit: config.limit } : {}),
    });
    this.pool = new BatchPool(this.reader.schema, config.batchSize, config.spec.userId !== undefined);
  }

  /**
   * The batches of `epoch` (0 for evaluation). Each is fresh unless batches were handed back
   * through {@link recycle}: then their buffers are reused.
   */
  async *batches(epoch: number): AsyncGenerator<BatchWithExtras> {
    const c = this.config;
    const seed = epochSeed(c.seed, epoch);
    const gatherer = new BatchGatherer(
      this.reader.schema,
      { batchSize: c.batchSize, shuffleBuffer: c.shuffleBuffer, seed, dropLast: c.dropLast ?? false },
      this.pool,
    );
    const groups = this.reader.groups(c.shuffleOrder ? seed : undefined);
    // One group is read ahead: it decodes while the batches of the one before are taken.
    // Its error, if any, is thrown where it is awaited; marked handled so that a wait at a yield is no crash.
    const readAhead = (): Promise<IteratorResult<GroupColumns>> => {
      const p = groups.next();
      p.catch(() => undefined);
      return p;
    };
    let ahead = readAhead();
    try {
      for (;;) {
        const r = await ahead;
        if (r.done) break;
        ahead = readAhead();
        gatherer.add(r.value);
        for (let b = gatherer.take(); b; b = gatherer.take()) yield b;
      }
      gatherer.finish();
      for (let b = gatherer.take(); b; b = gatherer.take()) yield b;
    } finally {
      // Stopped early: the group read ahead is not wanted.
      await groups.return(undefined);
    }
  }

  /** Takes back a batch of this stream whose reader is done with it; its buffers serve a later batch. */
  recycle(batch: BatchWithExtras): void {
    this.pool.recycle(batch);
  }
}

/** The buffers of a batch, to transfer rather than copy. */
export function batchBuffers(batch: BatchWithExtras): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (a: ArrayBufferView | undefined): void => {
    if (a && a.buffer instanceof ArrayBuffer && a.buffer.byteLength > 0) out.add(a.buffer);
  };
  add(batch.click);
  add(batch.conversion);
  add(batch.userIds);
  for (const f of Object.values(batch.fields)) {
    if (f.kind === 'categorical') add(f.ids);
    else if (f.kind === 'bag') {
      add(f.ids);
      add(f.offsets);
      add(f.values);
    } else add(f.values);
  }
  for (const col of Object.values(batch.extras)) add(col);
  return [...out];
}
