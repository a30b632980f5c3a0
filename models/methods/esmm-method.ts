/**
 * ESMM and ESMM-NS as methods: one {@link Esmm} trained on every impression.
 * ESMM-NS is the same model whose towers each own an embedding layer.
 */
import { Esmm, ESMM_DEFAULTS, type CvrPredictions, type EsmmLossWeights, type EsmmOptions } from '../esmm.js';
import { checks } from '../options.js';
import type { Batch, Schema } from '../schema.js';
import { CvrMethod, type MethodCommonOptions, type MethodLoss } from './method.js';
import { MODEL_DEFAULTS, registerMethod, type MethodRegistration } from './registry.js';

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
    this.validate = options.validate ?? MODEL_DEFAULTS.validate;
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

/** The own options of `esmm` and `esmm-ns` (the rest of {@link EsmmOptions} is common or set by the name). */
export interface EsmmOwnOptions {
  lossWeights?: EsmmLossWeights;
}

declare module './registry.js' {
  interface MethodOptionsByName {
    'esmm-ns': EsmmOwnOptions;
    esmm: EsmmOwnOptions;
  }
}

const esmmOptions: MethodRegistration<EsmmOwnOptions>['options'] = {
  lossWeights: {
    help: 'weights of the two loss terms',
    fields: {
      ctr: { help: 'weight of the CTR loss', default: ESMM_DEFAULTS.lossWeights.ctr, check: checks.number(0) },
      ctcvr: { help: 'weight of the CTCVR loss', default: ESMM_DEFAULTS.lossWeights.ctcvr, check: checks.number(0) },
    },
  },
};

registerMethod('esmm-ns', (o) => new EsmmMethod(o.schema, { ...o, shareEmbeddings: false }), {
  summary: 'ESMM whose two towers each own an embedding layer (Ma et al., SIGIR 2018, Table 2)',
  options: esmmOptions,
});
registerMethod('esmm', (o) => new EsmmMethod(o.schema, { ...o, shareEmbeddings: true }), {
  summary:
    'CTR and CVR towers over shared embeddings, trained on CTR and CTCVR over every impression (Ma et al., SIGIR 2018)',
  options: esmmOptions,
  variants: [{}, { lossWeights: { ctr: 0.3, ctcvr: 2 } }],
});
