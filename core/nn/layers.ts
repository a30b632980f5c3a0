/**
 * Layers with PyTorch's names and defaults: Linear, Embedding, EmbeddingBag,
 * PReLU, ReLU, Sigmoid, Dropout, Sequential and an MLP builder.
 */
import type { BagMode, DType } from '../../kernels/index.js';
import { fusions } from '../fusion.js';
import { full, normal, uniform } from '../init.js';
import { add, mul, relu, sigmoid } from '../ops/elementwise.js';
import { linearPrelu, prelu } from '../ops/nn.js';
import { embeddingBag, gatherRows, type BagInput } from '../ops/embedding.js';
import { matmul } from '../ops/linalg.js';
import { Rng } from '../random.js';
import { Tensor } from '../tensor.js';
import { Module, parameter } from './module.js';

/** Options common to layers that own parameters. */
export interface LayerOptions {
  /** Generator for initial values (default: a fresh `Rng(0)`). */
  rng?: Rng;
  dtype?: DType;
}

/** A module mapping one tensor to one tensor, usable in {@link Sequential}. */
export abstract class Layer extends Module {
  /** Map an input tensor to an output tensor. */
  abstract forward(x: Tensor): Tensor;
}

/** y = x·Wᵀ + b, with W of shape [out, in] and PyTorch's U(±1/√in) initialisation. */
export class Linear extends Layer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LayerOptions & { bias?: boolean } = {},
  ) {
    super();
    const rng = options.rng ?? new Rng(0);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = parameter(uniform([outFeatures, inFeatures], -bound, bound, { rng, dtype: options.dtype }));
    this.bias =
      options.bias === false ? null : parameter(uniform([outFeatures], -bound, bound, { rng, dtype: options.dtype }));
  }

  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(
        `Linear(${this.inFeatures}→${this.outFeatures}): input has ${x.shape[x.rank - 1]} features, shape [${x.shape.join(', ')}]`,
      );
    }
    const y = matmul(x, this.weight, { transB: true });
    return this.bias ? add(y, this.bias) : y;
  }
}

/** PReLU with one learnable slope per channel (PyTorch initialises slopes to 0.25). */
export class PReLU extends Layer {
  readonly weight: Tensor;
  constructor(channels: number, init = 0.25, options: LayerOptions = {}) {
    super();
    this.weight = parameter(full([channels], init, { dtype: options.dtype }));
  }
  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    return prelu(x, this.weight);
  }
}

/** max(x, 0). */
export class ReLU extends Layer {
  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** Logistic sigmoid. */
export class Sigmoid extends Layer {
  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

/** Inverted dropout: in training, zero each value with probability p and scale the rest by 1/(1-p). */
export class Dropout extends Layer {
  private readonly rng: Rng;
  constructor(
    readonly p: number,
    options: { rng?: Rng } = {},
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
    this.rng = options.rng ?? new Rng(0);
  }
  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    // The mask is drawn on the host and uploaded: a write to the device, never a read back.
    const keep = 1 / (1 - this.p);
    const mask = new Float32Array(x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = this.rng.uniform() >= this.p ? keep : 0;
    return mul(x, Tensor.fromArray(mask, x.shape, { dtype: x.dtype, backend: x.backend }));
  }
}

/** Whether `layer` is exactly a layer class (a subclass may override its forward). */
function isExactly<T extends Layer>(layer: Layer, cls: new (...args: never[]) => T): layer is T {
  return layer.constructor === cls;
}

/**
 * Layers applied in order; a Linear with a bias followed by a PReLU runs as one fused op
 * (`linearPrelu`, unless the `linearPrelu` fusion of `setFusions` is off).
 */
export class Sequential extends Layer {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
  }
  /** Apply the layer. */
  forward(x: Tensor): Tensor {
    const layers = this.layers;
    let h = x;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const next = layers[i + 1];
      if (
        fusions().linearPrelu &&
        next !== undefined &&
        isExactly(layer, Linear) &&
        layer.bias !== null &&
        isExactly(next, PReLU) &&
        next.weight.size === layer.outFeatures &&
        h.shape[h.rank - 1] === layer.inFeatures
      ) {
        h = linearPrelu(h, layer.weight, layer.bias, next.weight);
        i++;
      } else {
        h = layer.forward(h);
      }
    }
    return h;
  }
}

/** Options of {@link mlp}. */
export interface MlpOptions extends LayerOptions {
  /** Activation after each hidden layer (default `prelu`, with one learnt slope per channel). */
  activation?: 'prelu' | 'relu';
  /** Size of a final linear layer with no activation (e.g. 1 for a logit); omitted: none. */
  outFeatures?: number;
  /** Dropout after each hidden activation. */
  dropout?: number;
}

/** Build Linear → activation (→ dropout) blocks for each hidden size, plus an optional output layer. */
export function mlp(inFeatures: number, hidden: readonly number[], options: MlpOptions = {}): Sequential {
  const rng = options.rng ?? new Rng(0);
  const layers: Layer[] = [];
  let width = inFeatures;
  for (const size of hidden) {
    layers.push(new Linear(width, size, { rng, dtype: options.dtype }));
    layers.push(
      (options.activation ?? 'prelu') === 'prelu' ? new PReLU(size, 0.25, { dtype: options.dtype }) : new ReLU(),
    );
    if (options.dropout) layers.push(new Dropout(options.dropout, { rng: rng.fork() }));
    width = size;
  }
  if (options.outFeatures !== undefined)
    layers.push(new Linear(width, options.outFeatures, { rng, dtype: options.dtype }));
  return new Sequential(...layers);
}

/** A lookup table: `forward(ids)` returns one row per id, with a sparse gradient. */
export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: LayerOptions & { std?: number } = {},
  ) {
    super();
    this.weight = parameter(
      normal([numEmbeddings, embeddingDim], 0, options.std ?? 1, { rng: options.rng, dtype: options.dtype }),
    );
  }
  /** Apply the layer. */
  forward(ids: Int32Array): Tensor {
    return gatherRows(this.weight, ids);
  }
}

/** A pooled lookup table (`torch.nn.EmbeddingBag`): one row per bag, sparse gradient. */
export class EmbeddingBag extends Module {
  readonly weight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    readonly mode: BagMode = 'sum',
    options: LayerOptions & { std?: number } = {},
  ) {
    super();
    this.weight = parameter(
      normal([numEmbeddings, embeddingDim], 0, options.std ?? 1, { rng: options.rng, dtype: options.dtype }),
    );
  }
  /** Apply the layer. */
  forward(input: BagInput): Tensor {
    return embeddingBag(this.weight, { ...input, mode: input.mode ?? this.mode });
  }
}
