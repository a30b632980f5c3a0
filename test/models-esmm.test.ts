/** The ESMM frame and the methods' API: outputs for every row, real sharing, row selection. */
import { describe, expect, it } from 'vitest';
import { RowSparseGrad, type Tensor } from '../core/index.js';
import {
  AmanMethod,
  BaseMethod,
  createModel,
  DivisionMethod,
  Esmm,
  EsmmMethod,
  TABLE2_METHODS,
  OversamplingMethod,
  UnbiasMethod,
  type CreateModelOptions,
} from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';

const tower = { hidden: [4, 3] };

function touched(t: Tensor): boolean {
  const g = t.gradient;
  if (!g) return false;
  const v = g instanceof RowSparseGrad ? g.values.toArray() : g.toArray();
  return v.some((x) => x !== 0);
}

describe('Esmm', () => {
  it('scores every row, pCTCVR = pCTR × pCVR, pCVR exposed', () => {
    const model = new Esmm(tinySchema(3), { tower });
    const out = model.forward(tinyBatch());
    for (const t of [out.ctrLogit, out.cvrLogit, out.pctr, out.pcvr, out.pctcvr]) expect(t.shape).toEqual([3]);
    const [c, v, cv] = [out.pctr.toArray(), out.pcvr.toArray(), out.pctcvr.toArray()];
    for (let i = 0; i < 3; i++) {
      expect(v[i]).toBeGreaterThan(0);
      expect(v[i]).toBeLessThan(1);
      expect(cv[i]).toBeCloseTo(c[i] * v[i], 6);
    }
  });

  it('shares its embedding tables: the CTR loss alone and the CTCVR loss alone both reach them', () => {
    const model = new Esmm(tinySchema(3), { tower });
    expect(model.sharesEmbeddings).toBe(true);
    expect(model.ctrEmbedding).toBe(model.cvrEmbedding);
    const table = model.ctrEmbedding.tableFor('item');
    model.lossParts(tinyBatch()).ctr.backward();
    expect(touched(table)).toBe(true);
    for (const p of model.parameters()) p.grad = null;
    model.lossParts(tinyBatch()).ctcvr.backward();
    expect(touched(table)).toBe(true);
    // The CTR loss does not reach the CVR tower; the CTCVR loss does.
    expect(model.cvrTower.parameters().some(touched)).toBe(true);
  });

  it('the CTR loss alone never reaches the CVR tower', () => {
    const model = new Esmm(tinySchema(3), { tower });
    model.lossParts(tinyBatch()).ctr.backward();
    expect(model.cvrTower.parameters().some((p) => p.gradient !== null)).toBe(false);
  });

  it('ESMM-NS: distinct tables per tower; the CTR loss touches only the CTR tables', () => {
    const model = new Esmm(tinySchema(3), { tower, shareEmbeddings: false });
    expect(model.sharesEmbeddings).toBe(false);
    expect(model.ctrEmbedding).not.toBe(model.cvrEmbedding);
    for (const [name, t] of model.ctrEmbedding.tables) expect(model.cvrEmbedding.tables.get(name)).not.toBe(t);
    expect(model.parameters().length).toBe(new Esmm(tinySchema(3), { tower }).parameters().length + 3);
    model.lossParts(tinyBatch()).ctr.backward();
    expect(touched(model.ctrEmbedding.tableFor('item'))).toBe(true);
    expect(model.cvrEmbedding.tableFor('item').gradient).toBeNull();
  });

  it('weights its two loss terms', () => {
    const a = new Esmm(tinySchema(3), { tower, seed: 4 });
    const b = new Esmm(tinySchema(3), { tower, seed: 4, lossWeights: { ctr: 2, ctcvr: 0.5 } });
    const pa = a.lossParts(tinyBatch());
    const pb = b.lossParts(tinyBatch());
    expect(pb.ctr.item()).toBeCloseTo(2 * pa.ctr.item(), 5);
    expect(pb.ctcvr.item()).toBeCloseTo(0.5 * pa.ctcvr.item(), 5);
    expect(pb.total.item()).toBeCloseTo(pb.ctr.item() + pb.ctcvr.item(), 5);
  });
});

describe('createModel', () => {
  it('builds every method of Table 2 by name, each scoring every row', () => {
    const classes = {
      esmm: EsmmMethod,
      'esmm-ns': EsmmMethod,
      base: BaseMethod,
      aman: AmanMethod,
      oversampling: OversamplingMethod,
      unbias: UnbiasMethod,
      division: DivisionMethod,
    };
    for (const method of TABLE2_METHODS) {
      const m = createModel({ method, schema: tinySchema(3), tower } as CreateModelOptions);
      expect(m).toBeInstanceOf(classes[method]);
      expect(m.method).toBe(method);
      const p = m.predict(tinyBatch());
      expect(p.pctr).toHaveLength(3);
      expect(p.pcvr).toHaveLength(3);
      expect(p.pctcvr).toHaveLength(3);
      const loss = m.lossFor(tinyBatch());
      expect(Number.isFinite(loss.loss.item())).toBe(true);
    }
    expect(() => createModel({ method: 'nope', schema: tinySchema(3) } as unknown as CreateModelOptions)).toThrow(
      /unknown method 'nope'/,
    );
  });

  it('refuses a loss on an empty batch instead of returning NaN', () => {
    const m = createModel({ method: 'esmm', schema: tinySchema(3), tower });
    const empty = { size: 0, fields: {}, click: new Float32Array(0), conversion: new Float32Array(0) };
    expect(() => m.lossFor(empty)).toThrow(/esmm: cannot compute a loss on an empty batch/);
  });

  it('BASE trains its CVR model on clicked rows only', () => {
    const m = createModel({ method: 'base', schema: tinySchema(3), tower }) as BaseMethod;
    expect([...m.selectRows(tinyBatch()).rows]).toEqual([0, 2]);
    expect(m.lossFor(tinyBatch()).rows).toEqual({ ctr: 3, cvr: 2 });
    const noClicks = { ...tinyBatch(), click: new Float32Array(3), conversion: new Float32Array(3) };
    expect(Object.keys(m.lossFor(noClicks).parts)).toEqual(['ctr']);
  });

  it('OVERSAMPLING repeats converted rows k times', () => {
    const m = createModel({ method: 'oversampling', factor: 4, schema: tinySchema(3), tower }) as OversamplingMethod;
    const s = m.selectRows(tinyBatch());
    expect([...s.rows]).toEqual([0, 0, 0, 0, 2]);
    expect([...s.labels]).toEqual([1, 1, 1, 1, 0]);
  });

  it('AMAN adds unclicked rows at the configured rate, labelled 0, reproducibly', () => {
    const batch = tinyBatch();
    // The mean number of unclicked rows drawn per call (the batch has one), and the sum of their labels.
    const rate = (r: number, seed: number): number[] => {
      const m = createModel({ method: 'aman', negativeRate: r, schema: tinySchema(3), tower, seed }) as AmanMethod;
      let unclicked = 0;
      let labels = 0;
      for (let k = 0; k < 400; k++) {
        const s = m.selectRows(batch);
        s.rows.forEach((row, j) => {
          if (batch.click[row] === 0) {
            unclicked++;
            labels += s.labels[j];
          }
        });
      }
      return [unclicked / 400, labels];
    };
    expect(rate(1, 0)).toEqual([1, 0]);
    expect(rate(0, 0)).toEqual([0, 0]);
    expect(rate(0.2, 3)[0]).toBeGreaterThan(0.12);
    expect(rate(0.2, 3)[0]).toBeLessThan(0.28);
    expect(rate(0.2, 3)).toEqual(rate(0.2, 3));
  });

  it('UNBIAS accepts clicked rows with probability 1 − pCTR (paper) or min(1, p_min / pCTR) (inverse)', () => {
    const paper = createModel({ method: 'unbias', schema: tinySchema(3), tower }) as UnbiasMethod;
    const pctr = paper.predict(tinyBatch()).pctr;
    const accept = paper.acceptanceProbabilities(tinyBatch(), [0, 2]).toArray();
    expect(accept[0]).toBeCloseTo(1 - pctr[0], 6);
    expect(accept[1]).toBeCloseTo(1 - pctr[2], 6);
    const inverse = createModel({
      method: 'unbias',
      acceptance: 'inverse',
      schema: tinySchema(3),
      tower,
    }) as UnbiasMethod;
    const a = inverse.acceptanceProbabilities(tinyBatch(), [0, 2]).toArray();
    const lo = Math.min(pctr[0], pctr[2]);
    expect(a[0]).toBeCloseTo(lo / pctr[0], 6);
    expect(a[1]).toBeCloseTo(lo / pctr[2], 6);
    expect(Math.max(a[0], a[1])).toBeCloseTo(1, 6);
    for (const r of inverse.selectRows(tinyBatch()).rows) expect(tinyBatch().click[r]).toBe(1);
  });

  it('DIVISION clips pCVR = pCTCVR / pCTR to [0, 1]', () => {
    const m = createModel({ method: 'division', schema: tinySchema(3), tower }) as DivisionMethod;
    const p = m.predict(tinyBatch());
    for (let i = 0; i < 3; i++) expect(p.pcvr[i]).toBeCloseTo(Math.min(1, p.pctcvr[i] / p.pctr[i]), 6);
  });

  it('exposes named parameters and state dicts for every method', () => {
    const m = createModel({ method: 'esmm-ns', schema: tinySchema(3), tower });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('model.embeddings.0.tables.item');
    expect(names).toContain('model.embeddings.1.tables.item');
    const twin = createModel({ method: 'esmm-ns', schema: tinySchema(3), tower, seed: 9 });
    twin.loadStateDict(m.stateDict());
    expect([...twin.predict(tinyBatch()).pcvr]).toEqual([...m.predict(tinyBatch()).pcvr]);
  });
});
