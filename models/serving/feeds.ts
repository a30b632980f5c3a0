/**
 * A batch in the exported graph's input form (see exportOnnx): per field the arrays ONNX Runtime
 * takes, with bags padded on the right to the batch's longest bag. Independent of any runtime, so
 * that a caller can hand them to ONNX Runtime in whatever language.
 */
import type { Batch, Schema } from '../schema.js';

/** One graph input: its element type, data and dimensions. */
export interface OnnxFeed {
  type: 'int64' | 'float32';
  data: BigInt64Array | Float32Array;
  dims: number[];
}

/**
 * The graph inputs of a batch. A bag's padded length is the batch's longest bag, at least 1
 * (the graph accepts 0 too; 1 keeps every runtime's kernels on their common path).
 */
export function toOnnxFeeds(schema: Schema, batch: Batch): Record<string, OnnxFeed> {
  const n = batch.size;
  const feeds: Record<string, OnnxFeed> = {};
  for (const f of schema.fields) {
    const data = batch.fields[f.name];
    if (!data) throw new Error(`toOnnxFeeds: field '${f.name}' is missing from the batch`);
    if (f.kind === 'categorical' && data.kind === 'categorical') {
      const ids = new BigInt64Array(n);
      for (let r = 0; r < n; r++) ids[r] = BigInt(data.ids[r]);
      feeds[f.name] = { type: 'int64', data: ids, dims: [n] };
    } else if (f.kind === 'numeric' && data.kind === 'numeric') {
      feeds[f.name] = { type: 'float32', data: data.values, dims: [n, f.dim ?? 1] };
    } else if (f.kind === 'bag' && data.kind === 'bag') {
      let maxLen = 1;
      for (let r = 0; r < n; r++) maxLen = Math.max(maxLen, data.offsets[r + 1] - data.offsets[r]);
      const ids = new BigInt64Array(n * maxLen);
      const lengths = new BigInt64Array(n);
      const values = f.weighted ? new Float32Array(n * maxLen) : null;
      for (let r = 0; r < n; r++) {
        const start = data.offsets[r];
        const len = data.offsets[r + 1] - start;
        lengths[r] = BigInt(len);
        for (let j = 0; j < len; j++) {
          ids[r * maxLen + j] = BigInt(data.ids[start + j]);
          if (values) values[r * maxLen + j] = data.values ? data.values[start + j] : 1;
        }
      }
      feeds[f.name] = { type: 'int64', data: ids, dims: [n, maxLen] };
      feeds[`${f.name}_lengths`] = { type: 'int64', data: lengths, dims: [n] };
      if (values) feeds[`${f.name}_values`] = { type: 'float32', data: values, dims: [n, maxLen] };
    } else {
      throw new Error(`toOnnxFeeds: field '${f.name}' is ${data.kind} in the batch but ${f.kind} in the schema`);
    }
  }
  return feeds;
}
