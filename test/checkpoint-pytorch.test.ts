// A safetensors file written here opens in PyTorch with equal values (run where a python3 has torch).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Rng, Tensor } from '../core/index.js';
import { saveCheckpoint } from '../models/checkpoint.js';

/** The first python3 that imports torch: /usr/bin/python3 (CI installs python3-torch), then PATH's. */
function pythonWithTorch(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

// Reads the file by its header alone, as the format defines it: an 8-byte little-endian header length,
// the JSON header, then each tensor at data_offsets; torch.frombuffer views the bytes, with no esmm-ts code.
const READER = String.raw`
import json, struct, sys, torch
path = sys.argv[1]
raw = open(path, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n])
data = bytearray(raw[8 + n:])
dtypes = {'F32': torch.float32, 'F64': torch.float64}
out = {'metadata': header.pop('__metadata__', {}), 'tensors': {}}
for name, info in header.items():
    start, end = info['data_offsets']
    t = torch.frombuffer(data[start:end], dtype=dtypes[info['dtype']]).reshape(info['shape']) if end > start else torch.zeros(info['shape'], dtype=dtypes[info['dtype']])
    out['tensors'][name] = {'dtype': str(t.dtype), 'shape': list(t.shape), 'values': t.flatten().tolist()}
try:
    from safetensors.torch import load_file
    loaded = load_file(path)
    out['safetensors'] = all(torch.equal(loaded[k], torch.tensor(v['values'], dtype=loaded[k].dtype).reshape(v['shape'])) for k, v in out['tensors'].items())
except ImportError:
    out['safetensors'] = None
print(json.dumps(out))
`;

const python = pythonWithTorch();
if (!python)
  console.log('checkpoint-pytorch: no python3 with torch on this machine; the PyTorch round trip is skipped');

describe.skipIf(!python)('safetensors checkpoints in PyTorch', () => {
  test('every tensor loads in PyTorch with the same dtype, shape and values', async () => {
    const rng = new Rng(3);
    const tensors: Record<string, Tensor> = {
      'model.embeddings.0.tables.item': Tensor.fromArray(
        Array.from({ length: 50 * 18 }, () => rng.normal()),
        [50, 18],
      ),
      'model.ctrTower.net.layers.0.bias': Tensor.fromArray([0.1, -2.5e-8, 3.4e38, -0], [4]),
      'optimizer.step': Tensor.fromArray([7], [], { dtype: 'float64' }),
      'model.f64': Tensor.fromArray([Math.PI, -1e-300, 1e300], [3, 1], { dtype: 'float64' }),
      'model.empty': Tensor.fromArray([], [0, 18]),
    };
    const path = join(mkdtempSync(join(tmpdir(), 'esmm-torch-')), 'model.safetensors');
    await saveCheckpoint(path, tensors, { format: 'esmm-ts/trainer@1', method: 'esmm' });
    const r = spawnSync(python!, ['-c', READER, path], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
      safetensors: boolean | null;
    };
    expect(got.metadata).toMatchObject({ format: 'esmm-ts/trainer@1', method: 'esmm' });
    expect(Object.keys(got.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const g = got.tensors[name];
      expect(g.dtype, name).toBe(t.dtype === 'float64' ? 'torch.float64' : 'torch.float32');
      expect(g.shape, name).toEqual([...t.shape]);
      // Exact: a float32 widened to a double by PyTorch is the same number as in the Float32Array.
      expect(g.values, name).toEqual(Array.from(t.toArray()));
    }
    if (got.safetensors === null)
      console.log('checkpoint-pytorch: the safetensors package is absent; read through torch.frombuffer only');
    else expect(got.safetensors).toBe(true);
  });
});
