/**
 * ONNX's messages (onnx/onnx.proto), as far as an exported inference graph needs them:
 * ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto and ValueInfoProto, with the
 * field numbers of the official schema; and a reader of a model file's metadata_props.
 */
import { ProtoWriter, readFields } from './protobuf.js';

/** ONNX element types used here (TensorProto.DataType). */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;
export const ONNX_BOOL = 9;

/** An ONNX element type used here. */
export type OnnxElemType = typeof ONNX_FLOAT | typeof ONNX_INT64 | typeof ONNX_BOOL;

/** A constant tensor (an initializer or a Constant's value). */
export interface OnnxTensor {
  name: string;
  type: typeof ONNX_FLOAT | typeof ONNX_INT64;
  dims: readonly number[];
  values: Float32Array | BigInt64Array;
}

/** A node attribute value: int, float, ints, or a tensor. */
export type OnnxAttr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'tensor'; value: OnnxTensor };

/** One graph node. */
export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attrs?: Readonly<Record<string, OnnxAttr>>;
}

/** A graph input or output: its element type and shape (a string for a named dynamic dimension). */
export interface OnnxValueInfo {
  name: string;
  type: OnnxElemType;
  shape: readonly (number | string)[];
}

/** Everything an exported model holds. */
export interface OnnxModel {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  graphName: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxTensor[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  metadata: Readonly<Record<string, string>>;
  docString?: string;
}

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_TENSOR = 4;
const ATTR_INTS = 7;

function writeTensor(w: ProtoWriter, t: OnnxTensor): void {
  w.packedInts(1, t.dims);
  w.int(2, t.type);
  w.string(8, t.name);
  // raw_data is little-endian, which both typed arrays are on every platform Node runs on.
  w.bytes(9, new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength));
}

function writeAttr(w: ProtoWriter, name: string, a: OnnxAttr): void {
  w.string(1, name);
  switch (a.kind) {
    case 'int':
      w.int(20, ATTR_INT).int(3, a.value);
      break;
    case 'float':
      w.int(20, ATTR_FLOAT).float(2, a.value);
      break;
    case 'ints':
      w.int(20, ATTR_INTS).packedInts(8, a.value);
      break;
    case 'tensor':
      w.int(20, ATTR_TENSOR).message(5, (t) => writeTensor(t, a.value));
      break;
  }
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.type);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** Serialise a model to the bytes of an .onnx file. */
export function encodeOnnxModel(m: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, m.irVersion);
  w.string(2, m.producerName);
  w.string(3, m.producerVersion);
  if (m.docString) w.string(6, m.docString);
  w.message(7, (g) => {
    for (const n of m.nodes) {
      g.message(1, (node) => {
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        node.string(3, n.name);
        node.string(4, n.opType);
        for (const [name, a] of Object.entries(n.attrs ?? {})) node.message(5, (aw) => writeAttr(aw, name, a));
      });
    }
    g.string(2, m.graphName);
    for (const t of m.initializers) g.message(5, (tw) => writeTensor(tw, t));
    for (const v of m.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of m.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  });
  w.message(8, (o) => o.string(1, '').int(2, m.opset));
  for (const [key, value] of Object.entries(m.metadata)) w.message(14, (e) => e.string(1, key).string(2, value));
  return w.finish();
}

/** The metadata_props of an .onnx file (its top-level ModelProto field 14), without reading the graph. */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const out: Record<string, string> = {};
  let sawGraph = false;
  for (const f of readFields(bytes)) {
    if (f.field === 7 && f.bytes) sawGraph = true;
    if (f.field !== 14 || !f.bytes) continue;
    let key = '';
    let value = '';
    for (const e of readFields(f.bytes)) {
      if (e.field === 1 && e.bytes) key = utf8.decode(e.bytes);
      if (e.field === 2 && e.bytes) value = utf8.decode(e.bytes);
    }
    out[key] = value;
  }
  if (!sawGraph) throw new Error('readOnnxMetadata: not an ONNX model (no graph)');
  return out;
}
