/** The registries: typed, declared options (unknown or malformed ones rejected by name), kinds, headless towers. */
import { describe, expect, it } from 'vitest';
import { Rng, Tensor } from '../core/index.js';
import {
  baseModelInfo,
  BaseModel,
  createBaseModel,
  createModel,
  describeOptions,
  listMethods,
  methodInfo,
  MlpTower,
  registerBaseModel,
  SharedEmbedding,
  TABLE2_METHODS,
  towerMlp,
  trunkWidth,
  type CreateModelOptions,
  type TowerInput,
} from '../models/index.js';
import { tinyBatch, tinySchema } from './models-fixtures.js';

const schema = tinySchema(2);
const tower = { hidden: [3, 2] };

describe('method options', () => {
  it('lists the paper methods in its order', () => {
    expect(listMethods().slice(0, TABLE2_METHODS.length)).toEqual([...TABLE2_METHODS]);
  });

  it('rejects an unknown method option, naming the method and the option', () => {
    expect(() =>
      createModel({ method: 'aman', negativeRat: 0.2, schema, tower } as unknown as CreateModelOptions),
    ).toThrow(/method 'aman': unknown option 'negativeRat'; options: negativeRate/);
    expect(() => createModel({ method: 'base', factor: 3, schema } as unknown as CreateModelOptions)).toThrow(
      /method 'base': unknown option 'factor'; it takes no options/,
    );
    // @ts-expect-error a misspelt option does not compile either
    expect(() => createModel({ method: 'oversampling', facter: 3, schema })).toThrow(/unknown option 'facter'/);
  });

  it('rejects a malformed value, naming the option and the value', () => {
    expect(() => createModel({ method: 'aman', negativeRate: 2, schema })).toThrow(
      /method 'aman': option 'negativeRate' must be a number in \[0, 1\], got 2/,
    );
    expect(() => createModel({ method: 'oversampling', factor: 2.5, schema })).toThrow(
      /option 'factor' must be an integer ≥ 1, got 2.5/,
    );
    expect(() =>
      createModel({ method: 'esmm', lossWeights: { ctr: 1, ctvr: 2 }, schema } as unknown as CreateModelOptions),
    ).toThrow(/method 'esmm': unknown option 'lossWeights.ctvr'; options: lossWeights.ctr, lossWeights.ctcvr/);
  });

  it('describes every option with its default for --help', () => {
    expect(describeOptions(methodInfo('aman').options)).toEqual([
      'negativeRate: fraction of unclicked rows sampled as negatives (default 0.2)',
    ]);
  });
});

describe('base model options', () => {
  it('rejects an unknown tower option, naming the model and the option', () => {
    // @ts-expect-error a misspelt tower option does not compile
    expect(() => createModel({ method: 'esmm', schema, tower: { hiden: [3] } })).toThrow(
      /base model 'mlp': unknown option 'hiden'; options: hidden, activation, dropout/,
    );
    // Another model's option is unknown to this one.
    expect(() => createModel({ method: 'esmm', schema, tower: { attention: { hidden: [2] } } })).toThrow(
      /base model 'mlp': unknown option 'attention'/,
    );
    expect(() =>
      createModel({
        method: 'esmm',
        base: 'din',
        schema,
        tower: { attention: { hiden: [2] } },
      } as unknown as CreateModelOptions),
    ).toThrow(/base model 'din': unknown option 'attention.hiden'; options: attention.hidden/);
  });

  it('rejects a malformed value', () => {
    expect(() =>
      createModel({ method: 'esmm', base: 'din', schema, tower: { attention: { normalization: 'sum' } } } as never),
    ).toThrow(/base model 'din': option 'attention.normalization' must be one of none, softmax, got 'sum'/);
    expect(() => createModel({ method: 'base', schema, tower: { hidden: [3, 0] } })).toThrow(
      /base model 'mlp': option 'hidden' must be a list of positive integers, got \[3,0\]/,
    );
    expect(() => createModel({ method: 'esmm', base: 'nope', schema })).toThrow(
      /no base model 'nope'; registered: mlp/,
    );
  });

  it('takes each model kind from its registration', () => {
    const dims = new SharedEmbedding(schema).fieldDims();
    expect(createBaseModel('din', schema, tower, dims).kind).toBe('din');
    expect(new MlpTower(schema, tower, dims).kind).toBe('mlp');
    expect(baseModelInfo('din').options).toHaveProperty('attention');
  });

  it('refuses a second registration under one name, and a redeclared shared option', () => {
    expect(() => registerBaseModel('mlp', MlpTower, { summary: 'again', options: {} })).toThrow(
      /'mlp' is already registered/,
    );
    class Wide extends BaseModel {
      forward(input: TowerInput): Tensor {
        return Tensor.zeros([input.size, 1]);
      }
    }
    expect(() =>
      registerBaseModel('test-wide', Wide, {
        summary: 'x',
        options: { hidden: { help: 'again' } } as never,
      }),
    ).toThrow(/'test-wide' redeclares the shared option 'hidden'/);
  });
});

describe('towerMlp', () => {
  it('ends in one logit, or without its head in the last hidden width', () => {
    const options = { hidden: [5, 4], rng: new Rng(1) };
    const x = Tensor.zeros([3, 6]);
    expect(towerMlp(6, options).forward(x).shape).toEqual([3, 1]);
    expect(towerMlp(6, options, { logit: false }).forward(x).shape).toEqual([3, trunkWidth(6, options)]);
    expect(trunkWidth(6, options)).toBe(4);
    expect(trunkWidth(6, { hidden: [] })).toBe(6);
  });

  it('builds a tower whose batch output matches the registry contract', () => {
    const embedding = new SharedEmbedding(schema);
    const t = createBaseModel('deepfm', schema, tower, embedding.fieldDims());
    expect(t.forward(embedding.forward(tinyBatch())).shape).toEqual([3, 1]);
  });
});
