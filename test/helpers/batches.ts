/** Batches as plain arrays, so that two sources' batches compare with `toEqual` whatever their array types. */
import type { BatchWithExtras } from '../../models/data/rows.js';

/** A batch's labels, user ids and every field's arrays as plain number arrays. */
export function plainBatch(b: BatchWithExtras): unknown {
  const fields: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(b.fields))
    fields[k] = Object.fromEntries(
      Object.entries(f).map(([kk, v]) => [kk, ArrayBuffer.isView(v) ? Array.from(v as Int32Array) : v]),
    );
  return {
    size: b.size,
    click: Array.from(b.click),
    conversion: Array.from(b.conversion),
    userIds: Array.from(b.userIds ?? []),
    fields,
  };
}
