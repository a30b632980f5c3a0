/**
 * ESMM and ESMM-NS as methods: one {@link Esmm} trained on every impression.
 * ESMM-NS is the same model whose towers each own an embedding layer.
 */
import type { CvrPredictions, EsmmOptions } from '../esmm.js';
import { Esmm } from '../esmm.js';
import type { Batch, Schema } from '../schema.js';
import { CvrMethod, type MethodCommonOptions, type MethodLoss } from './method.js';

/** Options of {@link EsmmMethod}. */
export type EsmmMethodOptions = EsmmOptions & MethodCommonOptions;

/** `esmm` (shared embeddings) or `esmm-ns` (not shared). */
export class EsmmMethod extends CvrMethod {
  readonly method: 'esmm' | 'esmm-ns';
  readonly schema: Schema;
  readonly model: Esmm;

  constructor(schema: Schema, options: EsmmMethodOptions = {}) {
    super();
    this.schema = schema;
    this.validate = options.validate ?? true;
    this.model = new Esmm(schema, options);
    this.method = this.model.sharesEmbeddings ? 'esmm' : 'esmm-ns';
  }

  forward(batch: Batch): CvrPredictions {
    this.check(batch);
    const { pctr, pcvr, pctcvr } = this.model.forward(batch);
    return { pctr, pcvr, pctcvr };
  }

  lossFor(batch: Batch): MethodLoss {
    this.check(batch, true);
    const { total, ctr, ctcvr } = this.model.lossParts(batch);
    return { loss: total, parts: { ctr, ctcvr }, rows: { ctr: batch.size, ctcvr: batch.size } };
  }
}
