/** `esmm serve`: the scoring server (POST /score, GET /healthz, GET /metadata) until SIGTERM or SIGINT. */
import { closeOnSignals, openServedModel, SERVER_DEFAULTS, startServer, type EngineName } from '../serving/index.js';
import { applyBackend, BACKEND_FLAGS } from './common.js';
import { num, optNum, parseFlags, str, UsageError, type Command, type FlagSpecs } from './flags.js';

const FLAGS: FlagSpecs = {
  model: {
    kind: 'string',
    help: 'model.onnx (ONNX Runtime) or a checkpoint of esmm train',
    default: 'runs/model.safetensors',
  },
  port: { kind: 'integer', help: 'TCP port (0: any free one)', default: SERVER_DEFAULTS.port, min: 0, max: 65535 },
  host: { kind: 'string', help: 'address to listen on', default: SERVER_DEFAULTS.host },
  engine: { kind: 'string', help: 'esmm-ts | onnxruntime (default: onnxruntime for .onnx, esmm-ts otherwise)' },
  'max-rows': { kind: 'integer', help: 'rows per request at most', default: SERVER_DEFAULTS.maxRows, min: 1 },
  'max-bytes': { kind: 'integer', help: 'request body bytes at most', default: SERVER_DEFAULTS.maxBytes, min: 1 },
  'batch-window-ms': {
    kind: 'number',
    help: 'how long a request waits for others to share its micro-batch',
    default: SERVER_DEFAULTS.batchWindowMs,
    min: 0,
  },
  'max-batch-rows': {
    kind: 'integer',
    help: 'rows of one micro-batch at most',
    default: SERVER_DEFAULTS.maxBatchRows,
    min: 1,
  },
  threads: { kind: 'integer', help: 'ONNX Runtime intra-op threads (default: its own choice)', min: 1 },
  ...BACKEND_FLAGS,
};

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Serve a model over HTTP: POST /score (JSON rows of raw ids), GET /healthz, GET /metadata.',
  flags: FLAGS,
  async run(args) {
    const v = parseFlags('serve', args, FLAGS);
    await applyBackend(v);
    const engine = str(v, 'engine');
    if (engine !== undefined && engine !== 'esmm-ts' && engine !== 'onnxruntime')
      throw new UsageError(`--engine must be esmm-ts or onnxruntime, got '${engine}'`);
    const model = await openServedModel(str(v, 'model')!, {
      engine: engine as EngineName | undefined,
      threads: optNum(v, 'threads'),
    });
    const server = await startServer(model, {
      port: num(v, 'port'),
      host: str(v, 'host'),
      maxRows: num(v, 'max-rows'),
      maxBytes: num(v, 'max-bytes'),
      batchWindowMs: num(v, 'batch-window-ms'),
      maxBatchRows: num(v, 'max-batch-rows'),
    });
    console.log(
      `serving ${model.metadata.method}/${model.metadata.base_model} with ${model.engine.name} on ${server.url}`,
    );
    return new Promise<number>((resolve) => {
      closeOnSignals(server, { exit: resolve, log: (line) => console.error(line) });
    });
  },
};
