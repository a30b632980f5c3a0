/**
 * A funnel simulator: impression → click → conversion with known ground truth.
 *
 * Users and items carry latent vectors. Clicks follow a user's *click taste*
 * and conversions a *purchase taste* correlated with it (correlation `rho`);
 * items also carry a "bait" factor that raises clicks but lowers conversions,
 * and a quality that only matters after the click. Clicked impressions are
 * therefore a biased sample for CVR: exactly the sample-selection bias ESMM
 * addresses. For every impression the simulator records the true pCTR, the
 * true pCVR and the counterfactual conversion (what would have happened had
 * it been clicked), so CVR can be evaluated over the entire space.
 *
 * Fields mirror Ali-CCP (names are its field ids): user id and profile,
 * 14-day behaviour bags with counts, item id/category/shop/brand, count-valued
 * crosses and a 3-valued context. Ids are 1-based; row 0 of every table means
 * "missing". Everything is drawn from one seed.
 */
import { Rng } from '../../core/random.js';
import type { Batch, BagField, CategoricalField, FieldBatch, Schema } from '../schema.js';
import type { Row } from './rows.js';

/** Settings of the simulated world and funnel. */
export interface SimulatorConfig {
  seed: number;
  numUsers: number;
  numItems: number;
  numCategories: number;
  numShops: number;
  numBrands: number;
  /** Width of the latent tastes. */
  latentDim: number;
  /** Target mean click rate over impressions. */
  ctr: number;
  /** Target mean conversion rate among clicked impressions. */
  cvr: number;
  /** Correlation between a user's click and purchase tastes. */
  rho: number;
  /** How strongly "bait" raises clicks and lowers conversions: the source of the selection bias. */
  bait: number;
  /** Weight of the user–item taste match in the click logit (the purchase logit keeps weight 1). */
  clickMatch: number;
  /** Mean impressions per session (one common-features row in Ali-CCP terms). */
  meanSessionLength: number;
  /** Mean number of past interactions behind a user's behaviour bags. */
  meanHistory: number;
  /** Items considered per impression by the exposure policy (it shows the best match among them). */
  candidates: number;
  /** Share of users whose consumption level (field 126) is recorded. */
  consumptionCoverage: number;
  /** Share of users whose geography (field 129) is recorded. */
  geographyCoverage: number;
  /** Share of items whose brand (field 216) is recorded. */
  brandCoverage: number;
}

/**
 * Defaults: Ali-CCP-like rates (4% CTR, 5% CVR) in a world dense enough that one epoch over
 * 150,000 impressions learns most of what the true propensities know (docs/reproducing-table2.md
 * gives the reasons), with bait strong enough that training CVR on clicks alone visibly falls short.
 */
export const DEFAULT_SIMULATOR_CONFIG: SimulatorConfig = {
  seed: 1,
  numUsers: 500,
  numItems: 1000,
  numCategories: 50,
  numShops: 100,
  numBrands: 200,
  latentDim: 8,
  ctr: 0.04,
  cvr: 0.05,
  rho: 0.6,
  bait: 1.5,
  clickMatch: 0.5,
  meanSessionLength: 8,
  meanHistory: 24,
  candidates: 8,
  consumptionCoverage: 0.42,
  geographyCoverage: 0.64,
  brandCoverage: 0.71,
};

/** Impressions in time order, one entry per impression (columns). */
export interface ImpressionLog {
  size: number;
  /** User index, 0-based (field 101 holds index + 1). */
  user: Int32Array;
  /** Item index, 0-based (field 205 holds index + 1). */
  item: Int32Array;
  /** Context (field 301), 1..3. */
  context: Int32Array;
  /** Session number; impressions of a session are consecutive. */
  session: Int32Array;
  click: Float32Array;
  conversion: Float32Array;
  /** Whether it would have converted had it been clicked (equals `conversion` where clicked). */
  potentialConversion: Float32Array;
  /** True click probability. */
  pCtr: Float32Array;
  /** True conversion probability given a click. */
  pCvr: Float32Array;
}

/** A batch with the simulator's ground truth. */
export interface SimulatedBatch extends Batch {
  userIds: Int32Array;
  /** Counterfactual conversion label of every impression. */
  potentialConversion: Float32Array;
  /** True pCTR. */
  pCtr: Float32Array;
  /** True pCVR (post-click). */
  pCvr: Float32Array;
}

/** A weighted bag of 1-based ids. */
export interface SimBag {
  ids: Int32Array;
  values: Float32Array;
}

/** A simulated user's observable fields. */
export interface SimUser {
  gender: number;
  age: number;
  /** 0 when not recorded. */
  consumption: number;
  /** 0 when not recorded. */
  geography: number;
  categories: SimBag;
  shops: SimBag;
  brands: SimBag;
  items: SimBag;
}

/** A simulated item's observable fields. */
export interface SimItem {
  category: number;
  shop: number;
  /** 0 when not recorded. */
  brand: number;
}

/** Share of the variance of an item's bait (quality) that is its shop's (brand's). */
const SHARED_EFFECT_SHARE = 0.8;

const GENDERS = 2;
const AGES = 7;
const CONSUMPTION_LEVELS = 4;
const GEOGRAPHIES = 20;
const CONTEXTS = 3;

/** The simulated world and a seeded stream of impressions over it. */
export class FunnelSimulator {
  readonly config: SimulatorConfig;
  /** The schema of its batches. */
  readonly schema: Schema;
  /** Observable user fields, by user index. */
  readonly users: SimUser[] = [];
  /** Observable item fields, by item index. */
  readonly items: SimItem[] = [];
  /** Intercepts found by calibration (click, conversion). */
  readonly intercepts: { click: number; conversion: number };

  private readonly d: number;
  private readonly clickTaste: Float64Array;
  private readonly buyTaste: Float64Array;
  private readonly userClickBias: Float64Array;
  private readonly userBuyBias: Float64Array;
  private readonly trueConsumption: Int32Array;
  private readonly userCumWeight: Float64Array;
  private readonly itemVec: Float64Array;
  private readonly itemPop: Float64Array;
  private readonly itemBait: Float64Array;
  private readonly itemQuality: Float64Array;
  private readonly itemTrueBrand: Int32Array;
  private readonly itemCumWeight: Float64Array;
  private readonly genderCategory: Float64Array;
  private readonly catCount: Map<number, number>[] = [];
  private readonly shopCount: Map<number, number>[] = [];
  private readonly brandCount: Map<number, number>[] = [];
  private readonly stream: Rng;
  private nextSession = 0;

  constructor(config: Partial<SimulatorConfig> = {}) {
    const c = (this.config = { ...DEFAULT_SIMULATOR_CONFIG, ...config });
    validateConfig(c);
    const rng = new Rng(c.seed);
    const worldRng = rng.fork();
    const calibrationRng = rng.fork();
    this.stream = rng.fork();
    const d = (this.d = c.latentDim);
    const normals = (n: number, scale: number): Float64Array => {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = scale * worldRng.normal();
      return a;
    };

    // Items: category vectors dominate, brand and shop refine them, so the id fields carry the tastes.
    const catVec = normals(c.numCategories * d, 1);
    const brandVec = normals(c.numBrands * d, 0.7);
    const shopVec = normals(c.numShops * d, 0.5);
    const catCum = zipfCumulative(c.numCategories, 1.0);
    const shopCum = zipfCumulative(c.numShops, 0.8);
    const brandsOfCategory: number[][] = Array.from({ length: c.numCategories }, () => []);
    for (let b = 0; b < c.numBrands; b++) brandsOfCategory[sampleCumulative(catCum, worldRng)].push(b);
    this.itemVec = new Float64Array(c.numItems * d);
    this.itemPop = normals(c.numItems, 0.5);
    this.itemBait = normals(c.numItems, 1);
    this.itemQuality = normals(c.numItems, 0.7);
    // Bait is mostly a shop's habit and quality mostly a brand's, so both can be learned from fields
    // seen on many impressions; the rest is the item's own and needs its id.
    const shopBait = normals(c.numShops, 1);
    const brandQuality = normals(c.numBrands, 0.7);
    const shared = Math.sqrt(SHARED_EFFECT_SHARE);
    const own = Math.sqrt(1 - SHARED_EFFECT_SHARE);
    this.itemTrueBrand = new Int32Array(c.numItems);
    const itemWeight = new Float64Array(c.numItems);
    const vecScale = 1 / Math.sqrt(1 + 0.49 + 0.25 + 0.25);
    for (let i = 0; i < c.numItems; i++) {
      const k = sampleCumulative(catCum, worldRng);
      const brands = brandsOfCategory[k];
      const b = brands.length > 0 ? brands[worldRng.int(brands.length)] : worldRng.int(c.numBrands);
      const s = sampleCumulative(shopCum, worldRng);
      for (let j = 0; j < d; j++) {
        this.itemVec[i * d + j] =
          vecScale * (catVec[k * d + j] + brandVec[b * d + j] + shopVec[s * d + j] + 0.5 * worldRng.normal());
      }
      this.itemBait[i] = shared * shopBait[s] + own * this.itemBait[i];
      this.itemQuality[i] = shared * brandQuality[b] + own * this.itemQuality[i];
      this.itemTrueBrand[i] = b + 1;
      this.items.push({ category: k + 1, shop: s + 1, brand: worldRng.bernoulli(c.brandCoverage) ? b + 1 : 0 });
      itemWeight[i] = Math.exp(this.itemPop[i]);
    }
    this.itemCumWeight = cumulative(itemWeight);
    this.genderCategory = normals(GENDERS * c.numCategories, 0.4);

    // Users: purchase taste = rho · click taste + noise, so the two funnels agree only partly.
    this.clickTaste = normals(c.numUsers * d, 1);
    this.buyTaste = new Float64Array(c.numUsers * d);
    const rest = Math.sqrt(1 - c.rho * c.rho);
    for (let i = 0; i < c.numUsers * d; i++) this.buyTaste[i] = c.rho * this.clickTaste[i] + rest * worldRng.normal();
    this.userClickBias = normals(c.numUsers, 0.3);
    this.userBuyBias = normals(c.numUsers, 0.3);
    this.trueConsumption = new Int32Array(c.numUsers);
    const activity = new Float64Array(c.numUsers);
    for (let u = 0; u < c.numUsers; u++) {
      activity[u] = Math.exp(0.8 * worldRng.normal());
      const level = 1 + worldRng.int(CONSUMPTION_LEVELS);
      this.trueConsumption[u] = level;
      const gender = 1 + worldRng.int(GENDERS);
      const age = 1 + worldRng.int(AGES);
      const consumption = worldRng.bernoulli(c.consumptionCoverage) ? level : 0;
      const geography = worldRng.bernoulli(c.geographyCoverage) ? 1 + worldRng.int(GEOGRAPHIES) : 0;
      const history = this.drawHistory(u, worldRng);
      this.users.push({ gender, age, consumption, geography, ...history });
    }
    this.userCumWeight = cumulative(activity);
    this.schema = simulatorSchema(c);
    this.intercepts = this.calibrate(calibrationRng);
  }

  /** The next `n` impressions of the stream (sessions continue across calls, so later calls are "later in time"). */
  generate(n: number): ImpressionLog {
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`FunnelSimulator.generate: n must be a non-negative integer, got ${n}`);
    const log = emptyLog(n);
    const rng = this.stream;
    const { click: b0, conversion: g0 } = this.intercepts;
    let i = 0;
    while (i < n) {
      const u = sampleCumulative(this.userCumWeight, rng);
      const length = 1 + geometric(this.config.meanSessionLength - 1, rng);
      const session = this.nextSession++;
      for (let k = 0; k < length && i < n; k++, i++) {
        const ctx = drawContext(rng);
        const item = this.expose(u, rng);
        const { clickLogit, buyLogit } = this.logits(u, item, ctx);
        const pCtr = sigmoid(b0 + clickLogit);
        const pCvr = sigmoid(g0 + buyLogit);
        const clicked = rng.uniform() < pCtr ? 1 : 0;
        // Drawn for every impression, so the counterfactual exists even where no click happened.
        const potential = rng.uniform() < pCvr ? 1 : 0;
        log.user[i] = u;
        log.item[i] = item;
        log.context[i] = ctx;
        log.session[i] = session;
        log.click[i] = clicked;
        log.conversion[i] = clicked * potential;
        log.potentialConversion[i] = potential;
        log.pCtr[i] = pCtr;
        log.pCvr[i] = pCvr;
      }
    }
    return log;
  }

  /** One batch of the log's rows `indices` (all rows when omitted). */
  batch(log: ImpressionLog, indices?: ArrayLike<number>): SimulatedBatch {
    const idx = indices ?? rangeArray(log.size);
    const size = idx.length;
    const cat = (n: string, f: (r: number) => number): [string, FieldBatch] => {
      const ids = new Int32Array(size);
      for (let r = 0; r < size; r++) ids[r] = f(idx[r]);
      return [n, { kind: 'categorical', ids }];
    };
    const bag = (n: string, f: (r: number) => SimBag | null): [string, FieldBatch] => {
      const offsets = new Int32Array(size + 1);
      const bags: (SimBag | null)[] = new Array<SimBag | null>(size);
      for (let r = 0; r < size; r++) {
        bags[r] = f(idx[r]);
        offsets[r + 1] = offsets[r] + (bags[r]?.ids.length ?? 0);
      }
      const ids = new Int32Array(offsets[size]);
      const values = new Float32Array(offsets[size]);
      for (let r = 0; r < size; r++) {
        const b = bags[r];
        if (!b) continue;
        ids.set(b.ids, offsets[r]);
        values.set(b.values, offsets[r]);
      }
      return [n, { kind: 'bag', ids, offsets, values }];
    };
    const user = (r: number): SimUser => this.users[log.user[r]];
    const item = (r: number): SimItem => this.items[log.item[r]];
    const fields: Record<string, FieldBatch> = Object.fromEntries([
      cat('101', (r) => log.user[r] + 1),
      cat('124', (r) => user(r).gender),
      cat('125', (r) => user(r).age),
      cat('126', (r) => user(r).consumption),
      cat('129', (r) => user(r).geography),
      bag('109_14', (r) => user(r).categories),
      bag('110_14', (r) => user(r).shops),
      bag('127_14', (r) => user(r).brands),
      bag('205_14', (r) => user(r).items),
      cat('205', (r) => log.item[r] + 1),
      cat('206', (r) => item(r).category),
      cat('207', (r) => item(r).shop),
      cat('216', (r) => item(r).brand),
      bag('508', (r) => this.cross(r, log, '508')),
      bag('509', (r) => this.cross(r, log, '509')),
      bag('702', (r) => this.cross(r, log, '702')),
      cat('301', (r) => log.context[r]),
    ]);
    const pick = (a: Float32Array): Float32Array => {
      const out = new Float32Array(size);
      for (let r = 0; r < size; r++) out[r] = a[idx[r]];
      return out;
    };
    const userIds = new Int32Array(size);
    for (let r = 0; r < size; r++) userIds[r] = log.user[idx[r]] + 1;
    return {
      size,
      fields,
      click: pick(log.click),
      conversion: pick(log.conversion),
      userIds,
      potentialConversion: pick(log.potentialConversion),
      pCtr: pick(log.pCtr),
      pCvr: pick(log.pCvr),
    };
  }

  /** Batches over a log, in order or fully shuffled with a seed (the log is in memory, so no buffer is needed). */
  *batches(
    log: ImpressionLog,
    options: { batchSize: number; shuffle?: boolean; seed?: number; dropLast?: boolean },
  ): Generator<SimulatedBatch> {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0)
      throw new Error(`FunnelSimulator.batches: batchSize must be a positive integer, got ${batchSize}`);
    const order = rangeArray(log.size);
    if (options.shuffle) new Rng(options.seed ?? 0).shuffle(order);
    for (let start = 0; start < log.size; start += batchSize) {
      const end = Math.min(log.size, start + batchSize);
      if (end - start < batchSize && options.dropLast) break;
      yield this.batch(log, order.subarray(start, end));
    }
  }

  /** The true click and post-click conversion probabilities of showing `item` to `user` (0-based) in `context` (1..3). */
  trueRates(user: number, item: number, context = 1): { pCtr: number; pCvr: number } {
    const c = this.config;
    if (!Number.isInteger(user) || user < 0 || user >= c.numUsers)
      throw new Error(`FunnelSimulator.trueRates: user ${user} outside [0, ${c.numUsers})`);
    if (!Number.isInteger(item) || item < 0 || item >= c.numItems)
      throw new Error(`FunnelSimulator.trueRates: item ${item} outside [0, ${c.numItems})`);
    if (context !== 1 && context !== 2 && context !== 3)
      throw new Error(`FunnelSimulator.trueRates: context must be 1, 2 or 3, got ${context}`);
    const { clickLogit, buyLogit } = this.logits(user, item, context);
    return { pCtr: sigmoid(this.intercepts.click + clickLogit), pCvr: sigmoid(this.intercepts.conversion + buyLogit) };
  }

  /** Row `r` of a log as a generic {@link Row} (ground truth in `extras`), for the streaming tools. */
  row(log: ImpressionLog, r: number): Row {
    const u = this.users[log.user[r]];
    const it = this.items[log.item[r]];
    return {
      features: {
        '101': log.user[r] + 1,
        '124': u.gender,
        '125': u.age,
        '126': u.consumption,
        '129': u.geography,
        '109_14': u.categories,
        '110_14': u.shops,
        '127_14': u.brands,
        '205_14': u.items,
        '205': log.item[r] + 1,
        '206': it.category,
        '207': it.shop,
        '216': it.brand,
        '508': this.cross(r, log, '508') ?? undefined,
        '509': this.cross(r, log, '509') ?? undefined,
        '702': this.cross(r, log, '702') ?? undefined,
        '301': log.context[r],
      },
      click: log.click[r],
      conversion: log.conversion[r],
      userId: log.user[r] + 1,
      extras: { potentialConversion: log.potentialConversion[r], pCtr: log.pCtr[r], pCvr: log.pCvr[r] },
    };
  }

  /** A cross field of row `r`: the user's 14-day count of the item's category (508), shop (509) or recorded brand (702); null when zero. */
  cross(r: number, log: ImpressionLog, field: '508' | '509' | '702'): SimBag | null {
    const u = log.user[r];
    const it = this.items[log.item[r]];
    const [id, count] =
      field === '508'
        ? [it.category, this.catCount[u].get(it.category)]
        : field === '509'
          ? [it.shop, this.shopCount[u].get(it.shop)]
          : [it.brand, it.brand === 0 ? undefined : this.brandCount[u].get(it.brand)];
    if (!count) return null;
    return { ids: Int32Array.of(id), values: Float32Array.of(count) };
  }

  private drawHistory(u: number, rng: Rng): Pick<SimUser, 'categories' | 'shops' | 'brands' | 'items'> {
    const c = this.config;
    const d = this.d;
    const length = 3 + poisson(Math.max(0, c.meanHistory - 3), rng);
    const cats = new Map<number, number>();
    const shops = new Map<number, number>();
    const brands = new Map<number, number>();
    const items = new Map<number, number>();
    const pool = 24;
    const weights = new Float64Array(pool);
    const picks = new Int32Array(pool);
    for (let t = 0; t < length; t++) {
      // Past interactions follow the click taste: a softmax choice among a random pool.
      let total = 0;
      for (let k = 0; k < pool; k++) {
        const i = rng.int(c.numItems);
        picks[k] = i;
        let dot = 0;
        for (let j = 0; j < d; j++) dot += this.clickTaste[u * d + j] * this.itemVec[i * d + j];
        weights[k] = Math.exp((1.5 * dot) / Math.sqrt(d));
        total += weights[k];
      }
      let x = rng.uniform() * total;
      let chosen = picks[pool - 1];
      for (let k = 0; k < pool; k++) {
        x -= weights[k];
        if (x < 0) {
          chosen = picks[k];
          break;
        }
      }
      const it = this.items[chosen];
      bump(cats, it.category);
      bump(shops, it.shop);
      bump(brands, this.itemTrueBrand[chosen]);
      bump(items, chosen + 1);
    }
    this.catCount[u] = cats;
    this.shopCount[u] = shops;
    this.brandCount[u] = brands;
    return { categories: toBag(cats), shops: toBag(shops), brands: toBag(brands), items: toBag(items) };
  }

  /** The exposure policy: the best of a few popularity-drawn candidates under a noisy match score, so exposure is not random. */
  private expose(u: number, rng: Rng): number {
    const d = this.d;
    let best = -1;
    let bestScore = -Infinity;
    for (let k = 0; k < this.config.candidates; k++) {
      const i = sampleCumulative(this.itemCumWeight, rng);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += this.clickTaste[u * d + j] * this.itemVec[i * d + j];
      const score = dot / Math.sqrt(d) + gumbel(rng);
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    return best;
  }

  private logits(u: number, i: number, ctx: number): { clickLogit: number; buyLogit: number } {
    const d = this.d;
    const c = this.config;
    let clickDot = 0;
    let buyDot = 0;
    for (let j = 0; j < d; j++) {
      clickDot += this.clickTaste[u * d + j] * this.itemVec[i * d + j];
      buyDot += this.buyTaste[u * d + j] * this.itemVec[i * d + j];
    }
    const item = this.items[i];
    const user = this.users[u];
    const catCount = this.catCount[u].get(item.category) ?? 0;
    const brandCount = this.brandCount[u].get(this.itemTrueBrand[i]) ?? 0;
    const position = ctx === 1 ? 0.4 : ctx === 2 ? 0 : -0.4;
    const clickLogit =
      (c.clickMatch * clickDot) / Math.sqrt(d) +
      this.itemPop[i] +
      c.bait * this.itemBait[i] +
      position +
      this.genderCategory[(user.gender - 1) * c.numCategories + item.category - 1] +
      this.userClickBias[u] +
      0.3 * Math.log1p(catCount);
    const buyLogit =
      (1.0 * buyDot) / Math.sqrt(d) +
      this.itemQuality[i] -
      c.bait * this.itemBait[i] +
      0.3 * (this.trueConsumption[u] - 2.5) +
      this.userBuyBias[u] +
      0.3 * Math.log1p(brandCount);
    return { clickLogit, buyLogit };
  }

  /** Finds the intercepts that hit the configured CTR and CVR-given-click on a calibration sample. */
  private calibrate(rng: Rng): { click: number; conversion: number } {
    const n = 20000;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const u = sampleCumulative(this.userCumWeight, rng);
      const { clickLogit, buyLogit } = this.logits(u, this.expose(u, rng), drawContext(rng));
      xs[k] = clickLogit;
      ys[k] = buyLogit;
    }
    const b0 = bisect((b) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += sigmoid(b + xs[k]);
      return s / n - this.config.ctr;
    });
    const pc = new Float64Array(n);
    let den = 0;
    for (let k = 0; k < n; k++) den += pc[k] = sigmoid(b0 + xs[k]);
    const g0 = bisect((g) => {
      let num = 0;
      for (let k = 0; k < n; k++) num += pc[k] * sigmoid(g + ys[k]);
      return num / den - this.config.cvr;
    });
    return { click: b0, conversion: g0 };
  }
}

/** The simulator's schema: Ali-CCP field ids, shared tables for category/shop/brand/item, DIN target 205 and sequence 205_14. */
export function simulatorSchema(
  c: Pick<SimulatorConfig, 'numUsers' | 'numItems' | 'numCategories' | 'numShops' | 'numBrands'>,
): Schema {
  const cat = (
    name: string,
    vocabSize: number,
    group: CategoricalField['group'],
    extra: Partial<CategoricalField> = {},
  ): CategoricalField => ({
    kind: 'categorical',
    name,
    vocabSize,
    group,
    ...extra,
  });
  const bag = (name: string, vocabSize: number, group: BagField['group'], extra: Partial<BagField> = {}): BagField => ({
    kind: 'bag',
    name,
    vocabSize,
    group,
    weighted: true,
    pooling: 'sum',
    ...extra,
  });
  return {
    fields: [
      cat('101', c.numUsers + 1, 'user'),
      cat('124', GENDERS + 1, 'user'),
      cat('125', AGES + 1, 'user'),
      cat('126', CONSUMPTION_LEVELS + 1, 'user'),
      cat('129', GEOGRAPHIES + 1, 'user'),
      bag('109_14', c.numCategories + 1, 'user', { table: 'category' }),
      bag('110_14', c.numShops + 1, 'user', { table: 'shop' }),
      bag('127_14', c.numBrands + 1, 'user', { table: 'brand' }),
      bag('205_14', c.numItems + 1, 'user', { table: '205', isSequence: true }),
      cat('205', c.numItems + 1, 'item', { isTarget: true }),
      cat('206', c.numCategories + 1, 'item', { table: 'category' }),
      cat('207', c.numShops + 1, 'item', { table: 'shop' }),
      cat('216', c.numBrands + 1, 'item', { table: 'brand' }),
      bag('508', c.numCategories + 1, 'cross'),
      bag('509', c.numShops + 1, 'cross'),
      bag('702', c.numBrands + 1, 'cross'),
      cat('301', CONTEXTS + 1, 'context'),
    ],
  };
}

/** Splits a log in time order at the session boundary nearest `trainFraction` (the paper splits 1:1 by time). */
export function splitLog(log: ImpressionLog, trainFraction = 0.5): { train: ImpressionLog; test: ImpressionLog } {
  if (!(trainFraction > 0 && trainFraction < 1))
    throw new Error(`splitLog: trainFraction must lie in (0, 1), got ${trainFraction}`);
  let cut = Math.round(log.size * trainFraction);
  // Keep a session on one side, as a user-session's common features are shared.
  while (cut > 0 && cut < log.size && log.session[cut] === log.session[cut - 1]) cut++;
  return { train: sliceLog(log, 0, cut), test: sliceLog(log, cut, log.size) };
}

/** Rows [start, end) of a log (views, no copy). */
export function sliceLog(log: ImpressionLog, start: number, end: number): ImpressionLog {
  return {
    size: end - start,
    user: log.user.subarray(start, end),
    item: log.item.subarray(start, end),
    context: log.context.subarray(start, end),
    session: log.session.subarray(start, end),
    click: log.click.subarray(start, end),
    conversion: log.conversion.subarray(start, end),
    potentialConversion: log.potentialConversion.subarray(start, end),
    pCtr: log.pCtr.subarray(start, end),
    pCvr: log.pCvr.subarray(start, end),
  };
}

function emptyLog(n: number): ImpressionLog {
  return {
    size: n,
    user: new Int32Array(n),
    item: new Int32Array(n),
    context: new Int32Array(n),
    session: new Int32Array(n),
    click: new Float32Array(n),
    conversion: new Float32Array(n),
    potentialConversion: new Float32Array(n),
    pCtr: new Float32Array(n),
    pCvr: new Float32Array(n),
  };
}

function validateConfig(c: SimulatorConfig): void {
  const positiveInts: (keyof SimulatorConfig)[] = [
    'numUsers',
    'numItems',
    'numCategories',
    'numShops',
    'numBrands',
    'latentDim',
    'candidates',
  ];
  for (const k of positiveInts) {
    if (!Number.isInteger(c[k]) || (c[k] as number) <= 0)
      throw new Error(`FunnelSimulator: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!(c.ctr > 0 && c.ctr < 0.5)) throw new Error(`FunnelSimulator: ctr must lie in (0, 0.5), got ${c.ctr}`);
  if (!(c.cvr > 0 && c.cvr < 0.5)) throw new Error(`FunnelSimulator: cvr must lie in (0, 0.5), got ${c.cvr}`);
  if (!(c.rho >= -1 && c.rho <= 1)) throw new Error(`FunnelSimulator: rho must lie in [-1, 1], got ${c.rho}`);
  for (const k of ['bait', 'clickMatch'] as const)
    if (!(Number.isFinite(c[k]) && c[k] >= 0))
      throw new Error(`FunnelSimulator: ${k} must be a finite number ≥ 0, got ${c[k]}`);
  if (!(c.meanSessionLength >= 1))
    throw new Error(`FunnelSimulator: meanSessionLength must be >= 1, got ${c.meanSessionLength}`);
  for (const k of ['consumptionCoverage', 'geographyCoverage', 'brandCoverage'] as const) {
    if (!(c[k] >= 0 && c[k] <= 1)) throw new Error(`FunnelSimulator: ${k} must lie in [0, 1], got ${c[k]}`);
  }
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

function bisect(f: (x: number) => number): number {
  let lo = -30;
  let hi = 30;
  for (let k = 0; k < 48; k++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function cumulative(w: Float64Array): Float64Array {
  const c = new Float64Array(w.length);
  let s = 0;
  for (let i = 0; i < w.length; i++) c[i] = s += w[i];
  return c;
}

function zipfCumulative(n: number, exponent: number): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 1 / Math.pow(i + 1, exponent);
  return cumulative(w);
}

function sampleCumulative(cum: Float64Array, rng: Rng): number {
  const x = rng.uniform() * cum[cum.length - 1];
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function drawContext(rng: Rng): number {
  const x = rng.uniform();
  return x < 0.5 ? 1 : x < 0.8 ? 2 : 3;
}

function geometric(mean: number, rng: Rng): number {
  if (mean <= 0) return 0;
  const p = 1 / (1 + mean);
  let u = rng.uniform();
  while (u === 0) u = rng.uniform();
  return Math.floor(Math.log(u) / Math.log(1 - p));
}

function poisson(mean: number, rng: Rng): number {
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * rng.normal()));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = rng.uniform();
  while (p > limit) {
    k++;
    p *= rng.uniform();
  }
  return k;
}

function gumbel(rng: Rng): number {
  let u = rng.uniform();
  while (u === 0) u = rng.uniform();
  return -Math.log(-Math.log(u));
}

function bump(m: Map<number, number>, k: number): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function toBag(m: Map<number, number>): SimBag {
  const ids = Int32Array.from(m.keys()).sort();
  const values = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) values[i] = m.get(ids[i]) as number;
  return { ids, values };
}

function rangeArray(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}
