import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FeatureListError,
  formatFeatureList,
  parseFeatureList,
  splitCommonLine,
  splitSkeletonLine,
  type FeatureList,
} from '../models/data/aliccp-format.js';

const fieldId = fc.oneof(
  fc.integer({ min: 0, max: 999 }).map(String),
  fc.tuple(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 99 })).map(([a, b]) => `${a}_${b}`),
);
const entry = fc.tuple(
  fieldId,
  fc.oneof(fc.integer({ min: 0, max: 10_100_000 }), fc.maxSafeNat()),
  fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 1000 }), fc.double({ min: -3.4e38, max: 3.4e38, noNaN: true })),
);

describe('feature-list parser', () => {
  it('parses random valid lists back exactly', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 40 }), (entries) => {
        const list: FeatureList = {
          fields: entries.map((e) => e[0]),
          ids: entries.map((e) => e[1]),
          values: entries.map((e) => e[2]),
        };
        const parsed = parseFeatureList(formatFeatureList(list));
        expect(parsed.fields).toEqual(list.fields);
        expect(parsed.ids).toEqual(list.ids);
        expect(parsed.values.map((v, i) => Object.is(v, list.values[i]))).toEqual(list.values.map(() => true));
      }),
      { numRuns: 500 },
    );
  });

  it('accepts the value spellings of the public files', () => {
    const p = parseFeatureList('109_14\x0212\x033\x01216\x027\x031.0\x01508\x029\x032.5e1');
    expect(p).toEqual({ fields: ['109_14', '216', '508'], ids: [12, 7, 9], values: [3, 1, 25] });
    expect(parseFeatureList('')).toEqual({ fields: [], ids: [], values: [] });
  });

  it('never fails on garbage with anything but a FeatureListError', () => {
    const chars = fc.constantFrom('\x01', '\x02', '\x03', '0', '1', '9', '_', '.', '-', 'e', 'x', ' ', ',', 'Z');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: chars, maxLength: 40 }), fc.string({ maxLength: 30 })), (text) => {
        try {
          const p = parseFeatureList(text);
          // Whatever parses must be well-formed and re-encode to the same entries.
          expect(parseFeatureList(formatFeatureList(p))).toEqual(p);
        } catch (e) {
          expect(e).toBeInstanceOf(FeatureListError);
          expect((e as Error).message.length).toBeGreaterThan(10);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('names the defect', () => {
    expect(() => parseFeatureList('205\x021')).toThrow(/entry 1 lacks the value separator/);
    expect(() => parseFeatureList('205\x021\x031\x01')).toThrow(/dangling/);
    expect(() => parseFeatureList('2a5\x021\x031')).toThrow(/bad field id "2a5"/);
    expect(() => parseFeatureList('205\x02-1\x031')).toThrow(/bad feature id "-1"/);
    expect(() => parseFeatureList('205\x021\x030x10')).toThrow(/bad value "0x10"/);
    expect(() => parseFeatureList('205\x021\x031e999')).toThrow(/non-finite/);
    // Finite as doubles, but Infinity once stored in a Float32Array.
    expect(() => parseFeatureList('205\x021\x033.5e38')).toThrow(/non-finite in float32/);
    expect(() => parseFeatureList('205\x021\x03-1e39')).toThrow(/non-finite in float32/);
    expect(parseFeatureList('205\x021\x033.4e38').values).toEqual([3.4e38]);
  });

  it('splits lines on the first commas only', () => {
    expect(splitSkeletonLine('7,1,0,ab,2,x,y')).toEqual({
      sampleId: '7',
      click: '1',
      conversion: '0',
      commonKey: 'ab',
      featureNum: '2',
      featureList: 'x,y',
    });
    expect(splitSkeletonLine('7,1,0,ab')).toBeNull();
    expect(splitCommonLine('ab,3,')).toEqual({ commonKey: 'ab', featureNum: '3', featureList: '' });
  });
});
