#!/usr/bin/env node
/**
 * Writes the shared inputs of the ESMM peer benchmark to benchmarks/out/:
 *
 *   init-<name>.bin   one file per parameter, float32 little-endian, row-major
 *   data-ids.bin      int32 [ROWS, 28]: 8 single-valued fields, then 2 bags of 10 ids
 *   data-labels.bin   float32 [ROWS, 2]: click, conversion (conversion = 1 only where click = 1)
 *   init-manifest.json  shapes, files and the recipe below
 *
 * Every peer (TF.js, PyTorch, later esmm-ts) loads these files, so all frameworks start
 * from bit-identical weights and see the same batches.
 *
 * Recipe (version 1), everything derived from one seed (default 2018):
 *   - PRNG: mulberry32. Each tensor has its own stream, seeded with
 *     (seed XOR fnv1a32(name)) >>> 0, so a tensor's values do not depend on the others.
 *   - uniform u = next() / 2^32 in [0, 1); normal by Box-Muller,
 *     z = sqrt(-2 ln(1 - u1)) * cos(2 pi u2), one normal per pair of draws.
 *   - embedding tables emb.f0..emb.f7, emb.b0, emb.b1: [100000, 18] ~ N(0, 0.01^2)
 *   - Linear weight [out, in] and bias [out] ~ U(-1/sqrt(in), 1/sqrt(in))  (PyTorch's default)
 *   - PReLU slopes: one per channel, 0.25
 *   - towers "ctr" and "cvr": l1 180->200, p1 (200), l2 200->80, p2 (80), l3 80->1
 *   - DIN workload (version 2): per tower an activation unit "<tower>.att": l1 72->80, p1 (80),
 *     l2 80->40, p2 (40), l3 40->1, scoring the behaviours of bag b0 against field f0
 *   - DeepFM workload (version 2): per tower first-order tables "<tower>.lin.<field>" [100000, 1]
 *     ~ N(0, 0.01^2) and a bias "<tower>.fm.bias" [1] = 0
 *   Each tensor lists the workloads (mlp, din, deepfm) that use it; adding tensors leaves the
 *   others' values unchanged, since every tensor has its own stream.
 *   - data (stream "data"): ids uniform in [0, 100000); click ~ Bernoulli(0.06) when
 *     f0's id is even, else Bernoulli(0.02) (4% overall); conversion given click ~
 *     Bernoulli(0.30) when f1's id is even, else Bernoulli(0.10) (20% overall), so the
 *     labels carry a little signal and the loss is informative.
 *   - batch k of size B is rows [(k*B) mod ROWS, +B); ROWS = 20480.
 *
 * Usage: node benchmarks/peers/make-init.mjs [--seed N] [--force]
 * Import: `ensureInit({ seed })` returns the manifest, generating the files when missing or stale.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const OUT_DIR = path.resolve(HERE, '..', 'out');
export const MANIFEST = path.join(OUT_DIR, 'init-manifest.json');

export const RECIPE_VERSION = 2;
export const VOCAB = 100_000;
export const DIM = 18;
export const SINGLE_FIELDS = 8;
export const BAG_FIELDS = 2;
export const BAG_LEN = 10;
export const ROWS = 20_480;
export const ID_COLS = SINGLE_FIELDS + BAG_FIELDS * BAG_LEN; // 28
export const TOWER_DIMS = [(SINGLE_FIELDS + BAG_FIELDS) * DIM, 200, 80, 1]; // 180 -> 200 -> 80 -> 1
/** DIN's activation unit over [e, q, e - q, e * q]: 72 -> 80 -> 40 -> 1 (the paper's 80-40). */
export const ATTENTION_DIMS = [4 * DIM, 80, 40, 1];
/** The base models benchmarked on the reference workload; DIN attends bag b0 against field f0. */
export const WORKLOADS = ['mlp', 'din', 'deepfm'];
export const DIN_PAIR = { sequence: 'b0', target: 'f0' };

function fnv1a32(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function streamFor(seed, name) {
  return mulberry32((seed ^ fnv1a32(name)) >>> 0);
}

function normalArray(n, std, rand) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = rand();
    const u2 = rand();
    out[i] = std * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

function uniformArray(n, lo, hi, rand) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

/** Linear [out, in] + bias, and PReLU slopes between the layers, of an MLP with the given widths. */
function mlpSpecs(prefix, dims, workloads) {
  const specs = [];
  for (let l = 0; l < dims.length - 1; l++) {
    const [inF, outF] = [dims[l], dims[l + 1]];
    const init = `uniform(+-1/sqrt(${inF}))`;
    specs.push({ name: `${prefix}.l${l + 1}.weight`, shape: [outF, inF], fanIn: inF, init, workloads });
    specs.push({ name: `${prefix}.l${l + 1}.bias`, shape: [outF], fanIn: inF, init, workloads });
    if (l < dims.length - 2)
      specs.push({ name: `${prefix}.p${l + 1}.weight`, shape: [outF], init: 'const(0.25)', workloads });
  }
  return specs;
}

/** The parameter list, in the order every peer uses; `workloads` names the base models that use each. */
export function parameterSpecs() {
  const specs = [];
  const fields = [
    ...Array.from({ length: SINGLE_FIELDS }, (_, f) => `f${f}`),
    ...Array.from({ length: BAG_FIELDS }, (_, b) => `b${b}`),
  ];
  for (const field of fields)
    specs.push({ name: `emb.${field}`, shape: [VOCAB, DIM], init: 'normal(0,0.01)', workloads: WORKLOADS });
  for (const tower of ['ctr', 'cvr']) {
    specs.push(...mlpSpecs(tower, TOWER_DIMS, WORKLOADS));
    specs.push(...mlpSpecs(`${tower}.att`, ATTENTION_DIMS, ['din']));
    for (const field of fields)
      specs.push({ name: `${tower}.lin.${field}`, shape: [VOCAB, 1], init: 'normal(0,0.01)', workloads: ['deepfm'] });
    specs.push({ name: `${tower}.fm.bias`, shape: [1], init: 'const(0)', workloads: ['deepfm'] });
  }
  return specs;
}

function valuesFor(spec, seed) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rand = streamFor(seed, spec.name);
  if (spec.init.startsWith('normal')) return normalArray(n, 0.01, rand);
  if (spec.init.startsWith('uniform')) {
    const bound = 1 / Math.sqrt(spec.fanIn);
    return uniformArray(n, -bound, bound, rand);
  }
  return new Float32Array(n).fill(spec.init === 'const(0)' ? 0 : 0.25);
}

function makeData(seed) {
  const rand = streamFor(seed, 'data');
  const ids = new Int32Array(ROWS * ID_COLS);
  const labels = new Float32Array(ROWS * 2);
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < ID_COLS; c++) ids[r * ID_COLS + c] = Math.floor(rand() * VOCAB);
    const f0 = ids[r * ID_COLS];
    const f1 = ids[r * ID_COLS + 1];
    const click = rand() < (f0 % 2 === 0 ? 0.06 : 0.02) ? 1 : 0;
    const convGivenClick = rand() < (f1 % 2 === 0 ? 0.3 : 0.1) ? 1 : 0;
    labels[r * 2] = click;
    labels[r * 2 + 1] = click * convGivenClick;
  }
  return { ids, labels };
}

function writeF32(file, arr) {
  fs.writeFileSync(file, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
}

export function generate(seed = 2018) {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const tensors = [];
  for (const spec of parameterSpecs()) {
    const file = `init-${spec.name}.bin`;
    writeF32(path.join(OUT_DIR, file), valuesFor(spec, seed));
    tensors.push({ ...spec, file, dtype: 'float32' });
  }
  const { ids, labels } = makeData(seed);
  writeF32(path.join(OUT_DIR, 'data-ids.bin'), ids);
  writeF32(path.join(OUT_DIR, 'data-labels.bin'), labels);
  const manifest = {
    recipeVersion: RECIPE_VERSION,
    seed,
    byteOrder: 'little-endian',
    vocab: VOCAB,
    dim: DIM,
    singleFields: SINGLE_FIELDS,
    bagFields: BAG_FIELDS,
    bagLen: BAG_LEN,
    towerDims: TOWER_DIMS,
    attentionDims: ATTENTION_DIMS,
    dinPair: DIN_PAIR,
    workloads: WORKLOADS,
    tensors,
    data: {
      rows: ROWS,
      ids: { file: 'data-ids.bin', dtype: 'int32', shape: [ROWS, ID_COLS], columns: 'f0..f7, b0[0..9], b1[0..9]' },
      labels: { file: 'data-labels.bin', dtype: 'float32', shape: [ROWS, 2], columns: 'click, conversion' },
      batching: 'batch k of size B = rows [(k*B) mod rows, +B)',
    },
    recipe: 'see the header of benchmarks/peers/make-init.mjs (mulberry32 per tensor seeded with seed ^ fnv1a32(name))',
  };
  fs.writeFileSync(MANIFEST, JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** Returns the manifest, (re)generating the files if missing, stale, or of another seed. */
export function ensureInit({ seed = 2018, force = false } = {}) {
  if (!force && fs.existsSync(MANIFEST)) {
    try {
      const m = JSON.parse(fs.readFileSync(MANIFEST, 'utf8'));
      const complete = [...m.tensors.map((t) => t.file), m.data.ids.file, m.data.labels.file].every((f) =>
        fs.existsSync(path.join(OUT_DIR, f)),
      );
      if (m.recipeVersion === RECIPE_VERSION && m.seed === seed && complete) return m;
    } catch {
      /* regenerate */
    }
  }
  return generate(seed);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const seedAt = args.indexOf('--seed');
  const seed = seedAt >= 0 ? Number(args[seedAt + 1]) : 2018;
  const t0 = performance.now();
  const m = ensureInit({ seed, force: args.includes('--force') });
  const ms = (performance.now() - t0).toFixed(0);
  console.log(
    `init files ready in ${OUT_DIR} (seed ${m.seed}, ${m.tensors.length} tensors, ${m.data.rows} rows, ${ms} ms)`,
  );
}
