/**
 * Evaluation metrics computed globally over every row passed, never averaged
 * over mini-batches (averaging per batch inflates AUC; a known pitfall of
 * ESMM reimplementations).
 */

/** Labels or scores: any array of numbers. */
export type NumArray = ArrayLike<number>;

/** An AUC and its test-set sampling error. */
export interface AucWithStd {
  /** ROC AUC; NaN when a class is missing (see {@link aucUndefinedReason}). */
  auc: number;
  /** DeLong standard error of the AUC over these rows (NaN when the AUC is). */
  std: number;
}

/**
 * Exact ROC AUC by the rank-sum (Mann–Whitney) statistic, ties counted as
 * half (the same as averaging ranks within tied scores). Returns NaN when
 * only one class is present. Labels are positive when > 0.5.
 */
export function auc(labels: NumArray, scores: NumArray): number {
  return aucCore('auc', labels, scores, false).auc;
}

/**
 * The AUC with DeLong's standard error (DeLong, DeLong and Clarke-Pearson, Biometrics 1988):
 * var = var(V10)/m + var(V01)/n over the m positives' and n negatives' placement values, so a
 * difference between two methods smaller than about two of these is within the test set's noise.
 */
export function aucWithStd(labels: NumArray, scores: NumArray): AucWithStd {
  return aucCore('aucWithStd', labels, scores, true);
}

/**
 * Why an AUC over these labels is undefined (no positive or no negative label), or null when it
 * is defined; `label` and `rows` name them, e.g. `no positive label (conversion) among 80 clicked rows`.
 */
export function aucUndefinedReason(labels: NumArray, label = 'label', rows = 'rows'): string | null {
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > 0.5) nPos++;
  if (labels.length === 0) return `no ${rows}`;
  if (nPos === 0) return `no positive ${label} among ${labels.length} ${rows}`;
  if (nPos === labels.length) return `no negative ${label} among ${labels.length} ${rows}`;
  return null;
}

function aucCore(where: string, labels: NumArray, scores: NumArray, withStd: boolean): AucWithStd {
  checkLengths(where, labels, scores);
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > 0.5) nPos++;
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) return { auc: NaN, std: NaN };
  // Sorting the two classes apart lets the native numeric sort do the work (no comparator over indices).
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(nNeg);
  let p = 0;
  let q = 0;
  for (let i = 0; i < labels.length; i++) {
    const s = scores[i];
    if (Number.isNaN(s)) throw new Error(`${where}: score ${i} is NaN`);
    if (labels[i] > 0.5) pos[p++] = s;
    else neg[q++] = s;
  }
  pos.sort();
  neg.sort();
  // For each run of equal positive scores: negatives strictly below count 1, equal ones 1/2.
  // The same count per positive is its placement value V10 = (below + equal/2) / n.
  let u = 0;
  let sumSq10 = 0;
  let j = 0;
  for (let i = 0; i < nPos;) {
    const s = pos[i];
    let k = i;
    while (k < nPos && pos[k] === s) k++;
    while (j < nNeg && neg[j] < s) j++;
    let equal = 0;
    while (j + equal < nNeg && neg[j + equal] === s) equal++;
    const placement = j + equal / 2;
    u += (k - i) * placement;
    sumSq10 += (k - i) * placement * placement;
    i = k;
  }
  const value = u / (nPos * nNeg);
  if (!withStd) return { auc: value, std: NaN };
  // V01 of each negative: positives strictly above plus half the equal ones, over m.
  let sumSq01 = 0;
  let above = 0; // index of the first positive ≥ the current score
  for (let i = 0; i < nNeg;) {
    const s = neg[i];
    let k = i;
    while (k < nNeg && neg[k] === s) k++;
    while (above < nPos && pos[above] < s) above++;
    let equal = 0;
    while (above + equal < nPos && pos[above + equal] === s) equal++;
    const placement = nPos - above - equal / 2;
    sumSq01 += (k - i) * placement * placement;
    i = k;
  }
  // Sample variances of V10 = placement/n and V01 = placement/m, each with mean AUC.
  const var10 = nPos > 1 ? (sumSq10 / (nNeg * nNeg) - nPos * value * value) / (nPos - 1) : 0;
  const var01 = nNeg > 1 ? (sumSq01 / (nPos * nPos) - nNeg * value * value) / (nNeg - 1) : 0;
  return { auc: value, std: Math.sqrt(Math.max(0, var10 / nPos + var01 / nNeg)) };
}

/** Mean binary cross-entropy, predictions clipped to [eps, 1 − eps]. */
export function logloss(labels: NumArray, predictions: NumArray, eps = 1e-7): number {
  checkLengths('logloss', labels, predictions);
  if (labels.length === 0) return NaN;
  let s = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(1 - eps, Math.max(eps, predictions[i]));
    if (Number.isNaN(p)) throw new Error(`logloss: prediction ${i} is NaN`);
    const y = labels[i];
    s -= y * Math.log(p) + (1 - y) * Math.log(1 - p);
  }
  return s / labels.length;
}

/** Result of {@link gauc}. */
export interface GaucResult {
  /** Impression-weighted mean of per-user AUC; NaN when no user has both classes. */
  gauc: number;
  /** Users with both classes (the ones averaged). */
  users: number;
  /** Impressions of those users (the weight total). */
  impressions: number;
}

/** Group AUC: per-user AUC over users with both classes, averaged with the user's impression count as weight. */
export function gauc(labels: NumArray, scores: NumArray, userIds: NumArray): GaucResult {
  checkLengths('gauc', labels, scores);
  checkLengths('gauc', labels, userIds);
  const n = labels.length;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => userIds[a] - userIds[b] || a - b);
  let weighted = 0;
  let users = 0;
  let impressions = 0;
  for (let start = 0; start < n;) {
    let end = start;
    const u = userIds[order[start]];
    while (end < n && userIds[order[end]] === u) end++;
    const m = end - start;
    const ys = new Float64Array(m);
    const ss = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      ys[k] = labels[order[start + k]];
      ss[k] = scores[order[start + k]];
    }
    const a = auc(ys, ss);
    if (!Number.isNaN(a)) {
      weighted += a * m;
      users++;
      impressions += m;
    }
    start = end;
  }
  return { gauc: impressions > 0 ? weighted / impressions : NaN, users, impressions };
}

/** Inputs of {@link esmmMetrics}: labels and predictions over the same rows. */
export interface EsmmEvalInput {
  click: NumArray;
  conversion: NumArray;
  pCtr: NumArray;
  pCvr: NumArray;
  /** Predicted pCTCVR; defaults to pCTR × pCVR. */
  pCtcvr?: NumArray;
  /** Counterfactual conversion of every row (simulated data only): enables the entire-space CVR AUC. */
  potentialConversion?: NumArray;
  /** User ids: enable the CTR GAUC. */
  userIds?: NumArray;
}

/** The ESMM evaluation: AUCs as the paper computes them, plus loglosses. */
export interface EsmmMetrics {
  /** CTR AUC over all rows. */
  ctrAuc: number;
  /** CVR AUC over clicked rows (the paper's "CVR AUC"). */
  cvrAuc: number;
  /** CTCVR AUC over all rows, label click·conversion, score pCTCVR. */
  ctcvrAuc: number;
  /** CVR AUC over all rows against the counterfactual conversion (simulated data only). */
  cvrAucEntireSpace?: number;
  ctrLogloss: number;
  /** CVR logloss over clicked rows. */
  cvrLogloss: number;
  ctcvrLogloss: number;
  /** CTR GAUC (when user ids are given). */
  ctrGauc?: number;
  /** DeLong standard error over the test rows of each AUC above (the test set's sampling noise). */
  aucStd: Partial<Record<AucMetric, number>>;
  /** Why an AUC is NaN, by name: e.g. `cvrAuc: 'no positive label among 80 rows (clicked)'`. */
  undefinedAuc: Partial<Record<AucMetric, string>>;
  rows: number;
  clicks: number;
  conversions: number;
}

/** The AUCs of {@link EsmmMetrics}. */
export type AucMetric = 'ctrAuc' | 'cvrAuc' | 'ctcvrAuc' | 'cvrAucEntireSpace';

/**
 * One AUC's value for a reader, to follow its name: `0.6832 ± 0.0041` (DeLong std), or why it
 * is undefined instead of NaN, e.g. `undefined (no positive conversion among 80 clicked rows)`.
 */
export function formatAuc(metrics: EsmmMetrics, metric: AucMetric, digits = 4): string {
  const reason = metrics.undefinedAuc[metric];
  if (reason !== undefined) return `undefined (${reason})`;
  const value = metrics[metric];
  if (value === undefined) return 'not computed';
  const std = metrics.aucStd[metric];
  return std === undefined ? value.toFixed(digits) : `${value.toFixed(digits)} ± ${std.toFixed(digits)}`;
}

/** Computes {@link EsmmMetrics} over all rows at once. */
export function esmmMetrics(input: EsmmEvalInput): EsmmMetrics {
  const n = input.click.length;
  for (const [name, a] of Object.entries(input) as [string, NumArray | undefined][]) {
    if (a !== undefined && a.length !== n) throw new Error(`esmmMetrics: ${name} has ${a.length} rows, click has ${n}`);
  }
  const pCtcvr = input.pCtcvr ?? Float64Array.from({ length: n }, (_, i) => input.pCtr[i] * input.pCvr[i]);
  const ctcvr = new Float64Array(n);
  let clicks = 0;
  let conversions = 0;
  for (let i = 0; i < n; i++) {
    const c = input.click[i] > 0.5 ? 1 : 0;
    const z = input.conversion[i] > 0.5 ? 1 : 0;
    ctcvr[i] = c * z;
    clicks += c;
    conversions += c * z;
  }
  const clickedConv = new Float64Array(clicks);
  const clickedPcvr = new Float64Array(clicks);
  for (let i = 0, k = 0; i < n; i++) {
    if (input.click[i] > 0.5) {
      clickedConv[k] = input.conversion[i];
      clickedPcvr[k++] = input.pCvr[i];
    }
  }
  const aucStd: Partial<Record<AucMetric, number>> = {};
  const undefinedAuc: Partial<Record<AucMetric, string>> = {};
  const labelNames: Record<AucMetric, [string, string]> = {
    ctrAuc: ['click', 'rows'],
    cvrAuc: ['conversion', 'clicked rows'],
    ctcvrAuc: ['click·conversion', 'rows'],
    cvrAucEntireSpace: ['potential conversion', 'rows'],
  };
  const scored = (metric: AucMetric, labels: NumArray, scores: NumArray): number => {
    const r = aucWithStd(labels, scores);
    if (Number.isNaN(r.auc)) undefinedAuc[metric] = aucUndefinedReason(labels, ...labelNames[metric]) ?? 'undefined';
    else aucStd[metric] = r.std;
    return r.auc;
  };
  const out: EsmmMetrics = {
    ctrAuc: scored('ctrAuc', input.click, input.pCtr),
    cvrAuc: scored('cvrAuc', clickedConv, clickedPcvr),
    ctcvrAuc: scored('ctcvrAuc', ctcvr, pCtcvr),
    ctrLogloss: logloss(input.click, input.pCtr),
    cvrLogloss: logloss(clickedConv, clickedPcvr),
    ctcvrLogloss: logloss(ctcvr, pCtcvr),
    aucStd,
    undefinedAuc,
    rows: n,
    clicks,
    conversions,
  };
  if (input.potentialConversion)
    out.cvrAucEntireSpace = scored('cvrAucEntireSpace', input.potentialConversion, input.pCvr);
  if (input.userIds) out.ctrGauc = gauc(input.click, input.pCtr, input.userIds).gauc;
  return out;
}

/** Predictions and labels of one batch, for {@link EsmmAccumulator.add}: the same columns as a whole evaluation. */
export type EsmmBatchInput = EsmmEvalInput;

/** Collects predictions across batches and computes {@link EsmmMetrics} once at the end (never a mean of per-batch values). */
export class EsmmAccumulator {
  private readonly cols = new Map<keyof EsmmBatchInput, GrowableArray>();
  private batches = 0;
  private present: Set<keyof EsmmBatchInput> | null = null;

  /** Appends one batch; every batch must carry the same optional columns. */
  add(batch: EsmmBatchInput): void {
    const keys = (Object.keys(batch) as (keyof EsmmBatchInput)[]).filter((k) => batch[k] !== undefined);
    const n = batch.click.length;
    for (const k of keys) {
      const col = batch[k] as NumArray;
      if (col.length !== n) throw new Error(`EsmmAccumulator.add: ${k} has ${col.length} rows, click has ${n}`);
    }
    if (this.present === null) this.present = new Set(keys);
    else if (keys.length !== this.present.size || !keys.every((k) => this.present?.has(k))) {
      throw new Error(
        `EsmmAccumulator.add: batch ${this.batches} has columns [${keys.join(', ')}], earlier batches [${[...this.present].join(', ')}]`,
      );
    }
    for (const k of keys) {
      let g = this.cols.get(k);
      if (!g) this.cols.set(k, (g = new GrowableArray()));
      g.push(batch[k] as NumArray);
    }
    this.batches++;
  }

  /** Rows added so far. */
  get rows(): number {
    return this.cols.get('click')?.length ?? 0;
  }

  /** The metrics over everything added. */
  compute(): EsmmMetrics {
    const get = (k: keyof EsmmBatchInput): Float64Array | undefined => this.cols.get(k)?.view();
    const need = (k: keyof EsmmBatchInput): Float64Array => get(k) ?? new Float64Array(0);
    return esmmMetrics({
      click: need('click'),
      conversion: need('conversion'),
      pCtr: need('pCtr'),
      pCvr: need('pCvr'),
      pCtcvr: get('pCtcvr'),
      potentialConversion: get('potentialConversion'),
      userIds: get('userIds'),
    });
  }

  /** Forgets everything added. */
  reset(): void {
    this.cols.clear();
    this.present = null;
    this.batches = 0;
  }
}

/** A Float64 column that doubles its capacity as it grows. */
class GrowableArray {
  private data = new Float64Array(1024);
  length = 0;

  push(values: NumArray): void {
    const need = this.length + values.length;
    if (need > this.data.length) {
      let cap = this.data.length;
      while (cap < need) cap *= 2;
      const next = new Float64Array(cap);
      next.set(this.data.subarray(0, this.length));
      this.data = next;
    }
    for (let i = 0; i < values.length; i++) this.data[this.length + i] = values[i];
    this.length = need;
  }

  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

function checkLengths(where: string, a: NumArray, b: NumArray): void {
  if (a.length !== b.length) throw new Error(`${where}: ${a.length} labels but ${b.length} scores`);
}
