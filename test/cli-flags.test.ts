// Flag parsing of the command line: every value is checked against its declaration, named when wrong.
import { describe, expect, it } from 'vitest';
import { parseFlags, UsageError, type FlagSpecs } from '../models/cli.js';

const SPEC: FlagSpecs = {
  epochs: { kind: 'integer', help: 'epochs', default: 1, min: 1 },
  lr: { kind: 'number', help: 'rate', default: 0.002, min: 0 },
  rate: { kind: 'number', help: 'a probability', min: 0, max: 1 },
  hidden: { kind: 'list', help: 'sizes', default: '200,80' },
  out: { kind: 'string', help: 'path' },
  resume: { kind: 'boolean', help: 'resume' },
};

const parse = (...args: string[]) => parseFlags('train', args, SPEC);
const refuses = (args: string[], pattern: RegExp) => {
  expect(() => parse(...args)).toThrow(UsageError);
  expect(() => parse(...args)).toThrow(pattern);
};

describe('command-line flags', () => {
  it('fills defaults and reads both --name value and --name=value', () => {
    expect(parse()).toEqual({ epochs: 1, lr: 0.002, hidden: ['200', '80'] });
    expect(parse('--epochs', '3', '--lr=1e-3', '--hidden', '64, 32', '--out', 'm.st', '--resume')).toEqual({
      epochs: 3,
      lr: 0.001,
      hidden: ['64', '32'],
      out: 'm.st',
      resume: true,
    });
  });

  it('refuses empty, hex, fractional-where-integer and out-of-range numbers, naming the flag', () => {
    refuses(['--epochs='], /--epochs needs a decimal number, got ''/);
    refuses(['--epochs', '0x2'], /--epochs needs a decimal number, got '0x2'/);
    refuses(['--epochs', '2.5'], /--epochs needs a whole number/);
    refuses(['--epochs', '0'], /--epochs must be ≥ 1/);
    refuses(['--epochs=-1'], /--epochs must be ≥ 1/);
    refuses(['--rate', '1.5'], /--rate must be ≤ 1/);
    refuses(['--lr', 'Infinity'], /--lr needs a decimal number/);
    refuses(['--out='], /--out needs a value/);
  });

  it('refuses unknown options, missing values and stray arguments', () => {
    refuses(['--epochz', '3'], /Unknown option '--epochz'.*options of train: --epochs/);
    refuses(['--out'], /--out/);
    refuses(['stray'], /stray/);
    refuses(['--resume=yes'], /--resume/);
  });
});
