import { describe, expect, it } from 'vitest';
import { FunnelSimulator, splitLog, type ImpressionLog } from '../models/data/simulator.js';
import { collate, concatBatches } from '../models/data/rows.js';
import { tableOf, type BagField, type CategoricalField } from '../models/schema.js';
import { auc } from '../models/metrics.js';

const small = { numUsers: 500, numItems: 3000, numCategories: 60, numShops: 200, numBrands: 150 };

function rates(log: ImpressionLog): { ctr: number; cvr: number } {
  let clicks = 0;
  let conversions = 0;
  for (let i = 0; i < log.size; i++) {
    clicks += log.click[i];
    conversions += log.conversion[i];
  }
  return { ctr: clicks / log.size, cvr: conversions / clicks };
}

describe('FunnelSimulator', () => {
  it('reports the true rates it drew each impression from, and refuses bad arguments', () => {
    const sim = new FunnelSimulator({ ...small, seed: 3 });
    const log = sim.generate(200);
    for (let i = 0; i < log.size; i++) {
      const r = sim.trueRates(log.user[i], log.item[i], log.context[i]);
      expect(r.pCtr).toBeCloseTo(log.pCtr[i], 6);
      expect(r.pCvr).toBeCloseTo(log.pCvr[i], 6);
    }
    expect(() => sim.trueRates(small.numUsers, 0)).toThrow(/user 500 outside \[0, 500\)/);
    expect(() => sim.trueRates(0, -1)).toThrow(/item -1 outside/);
    expect(() => sim.trueRates(0, 0, 4)).toThrow(/context must be 1, 2 or 3/);
  });

  it('is deterministic per seed', () => {
    const a = new FunnelSimulator({ ...small, seed: 7 }).generate(3000);
    const b = new FunnelSimulator({ ...small, seed: 7 }).generate(3000);
    const c = new FunnelSimulator({ ...small, seed: 8 }).generate(3000);
    for (const k of [
      'user',
      'item',
      'context',
      'session',
      'click',
      'conversion',
      'potentialConversion',
      'pCtr',
      'pCvr',
    ] as const) {
      expect(b[k]).toEqual(a[k]);
    }
    expect(c.item).not.toEqual(a.item);
  });

  it('hits the configured click rate and post-click conversion rate, and keeps the funnel consistent', () => {
    const sim = new FunnelSimulator({ seed: 11 });
    const log = sim.generate(100_000);
    const r = rates(log);
    expect(r.ctr).toBeGreaterThan(0.036);
    expect(r.ctr).toBeLessThan(0.044);
    expect(r.cvr).toBeGreaterThan(0.04);
    expect(r.cvr).toBeLessThan(0.065);
    let broken = 0;
    for (let i = 0; i < log.size; i++) {
      // Conversions only after clicks; where clicked, the counterfactual is the observed label.
      if (log.conversion[i] === 1 && log.click[i] !== 1) broken++;
      if (log.click[i] === 1 && log.potentialConversion[i] !== log.conversion[i]) broken++;
    }
    expect(broken).toBe(0);
    const low = rates(new FunnelSimulator({ ...small, seed: 11, ctr: 0.04, cvr: 0.02 }).generate(60_000));
    expect(low.cvr).toBeGreaterThan(0.012);
    expect(low.cvr).toBeLessThan(0.03);
  });

  it('has real selection bias: pCVR is distributed differently on clicked and unclicked impressions', () => {
    const sim = new FunnelSimulator({ seed: 5 });
    const log = sim.generate(100_000);
    // AUC of true pCVR for telling clicked from unclicked: 0.5 would mean clicks are a random sample for CVR.
    const separation = auc(log.click, log.pCvr);
    expect(Math.abs(separation - 0.5)).toBeGreaterThan(0.03);
    // And pCTR, pCVR are correlated but far from identical.
    const lg = (p: number): number => Math.log(p / (1 - p));
    let sx = 0,
      sy = 0,
      sxx = 0,
      syy = 0,
      sxy = 0;
    for (let i = 0; i < log.size; i++) {
      const x = lg(log.pCtr[i]);
      const y = lg(log.pCvr[i]);
      sx += x;
      sy += y;
      sxx += x * x;
      syy += y * y;
      sxy += x * y;
    }
    const n = log.size;
    const corr = (sxy / n - (sx / n) * (sy / n)) / Math.sqrt((sxx / n - (sx / n) ** 2) * (syy / n - (sy / n) ** 2));
    expect(Math.abs(corr)).toBeGreaterThan(0.02);
    expect(Math.abs(corr)).toBeLessThan(0.8);
  });

  it('declares shared tables and DIN fields consistently, and its batches respect the schema', () => {
    const sim = new FunnelSimulator({ ...small, seed: 3 });
    const byName = new Map(sim.schema.fields.map((f) => [f.name, f]));
    const cat = (n: string): CategoricalField => byName.get(n) as CategoricalField;
    const bag = (n: string): BagField => byName.get(n) as BagField;
    expect(tableOf(bag('109_14'))).toBe(tableOf(cat('206')));
    expect(bag('109_14').vocabSize).toBe(cat('206').vocabSize);
    expect(tableOf(bag('127_14'))).toBe(tableOf(cat('216')));
    expect(tableOf(bag('110_14'))).toBe(tableOf(cat('207')));
    expect(cat('205').isTarget).toBe(true);
    expect(bag('205_14').isSequence).toBe(true);
    expect(tableOf(bag('205_14'))).toBe(tableOf(cat('205')));
    expect(bag('205_14').vocabSize).toBe(cat('205').vocabSize);
    expect(cat('301').vocabSize).toBe(4);

    const log = sim.generate(2000);
    const batches = [...sim.batches(log, { batchSize: 512, shuffle: true, seed: 1 })];
    expect(batches.map((b) => b.size)).toEqual([512, 512, 512, 464]);
    const all = concatBatches(sim.schema, batches);
    let clicks = 0;
    for (const b of batches) clicks += b.click.reduce((s, v) => s + v, 0);
    expect(clicks).toBe(log.click.reduce((s, v) => s + v, 0));
    for (const field of sim.schema.fields) {
      if (field.kind === 'numeric') continue;
      const f = all.fields[field.name];
      const ids = f.kind === 'numeric' ? [] : f.ids;
      expect(ids.every((id) => id >= 0 && id < field.vocabSize)).toBe(true);
    }
    // The columnar fast path and the generic row path agree.
    const direct = sim.batch(log, [0, 1, 2, 3]);
    const viaRows = collate(
      sim.schema,
      [0, 1, 2, 3].map((r) => sim.row(log, r)),
    );
    expect(viaRows.fields).toEqual(direct.fields);
    expect(viaRows.extras.pCvr).toEqual(direct.pCvr);
    expect(viaRows.userIds).toEqual(direct.userIds);
  });

  it('splits in time order at a session boundary', () => {
    const log = new FunnelSimulator({ ...small, seed: 4 }).generate(5000);
    const { train, test } = splitLog(log, 0.5);
    expect(train.size + test.size).toBe(5000);
    expect(Math.abs(train.size - 2500)).toBeLessThan(200);
    expect(train.session[train.size - 1]).toBeLessThan(test.session[0]);
  });

  // Speed is measured in benchmarks/, not asserted here: a wall-clock bound fails on a loaded machine.
  it('generates 200k impressions in one call', () => {
    const sim = new FunnelSimulator({ seed: 9 });
    const log = sim.generate(200_000);
    expect(log.size).toBe(200_000);
  });
});
