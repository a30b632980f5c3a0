/** `esmm export`: write a trained checkpoint as an ONNX model (opset 18) for ONNX Runtime. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { exportOnnx, loadTrainedModel, onnxOptionsOf } from '../serving/index.js';
import { parseFlags, str, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  model: { kind: 'string', help: 'checkpoint written by esmm train', default: 'runs/model.safetensors' },
  out: { kind: 'string', help: 'ONNX file to write (default: the checkpoint path with .onnx)' },
  commit: { kind: 'string', help: 'training commit for the metadata (default: the one recorded at training)' },
};

export const exportCommand: Command = {
  name: 'export',
  summary: 'Export a checkpoint to ONNX: padded bag inputs, pctr/pcvr/pctcvr and logits out, metadata inside.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('export', args, FLAGS);
    const model = str(v, 'model')!;
    const out = str(v, 'out') ?? `${model.replace(/\.safetensors$/, '')}.onnx`;
    const trained = await loadTrainedModel(model);
    const options = onnxOptionsOf(trained);
    const commit = str(v, 'commit');
    const bytes = exportOnnx(trained.method, commit ? { ...options, trainingCommit: commit } : options);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, bytes);
    console.log(
      `exported ${trained.config.method}/${trained.config.base} → ${out} (${(bytes.length / 1024).toFixed(0)} KiB)`,
    );
    return 0;
  },
};
