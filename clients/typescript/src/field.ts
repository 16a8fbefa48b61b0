// Typed arrays <-> idf.v1.Field, the one tensor message on the wire (little-endian, C order).
import { create } from "@bufbuild/protobuf";
import {
  BoundaryCondition,
  Dtype,
  type Field,
  FieldSchema,
} from "./gen/idf/v1/field_pb.js";

export type FieldArray = Float32Array | Float64Array | Int8Array | Int32Array;

const ITEMSIZE: Record<number, number> = {
  [Dtype.FLOAT32]: 4,
  [Dtype.FLOAT64]: 8,
  [Dtype.INT8]: 1,
  [Dtype.INT32]: 4,
};

function dtypeOf(values: FieldArray): Dtype {
  if (values instanceof Float32Array) return Dtype.FLOAT32;
  if (values instanceof Float64Array) return Dtype.FLOAT64;
  if (values instanceof Int8Array) return Dtype.INT8;
  return Dtype.INT32;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Options that travel with a field's values. */
export interface FieldOptions {
  spacing?: number[];
  boundary?: BoundaryCondition;
  boundaryValue?: number;
  units?: string;
}

/** Encode C-ordered values of the given shape as a Field. */
export function toField(values: FieldArray, shape: number[], options: FieldOptions = {}): Field {
  const count = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 0 || shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new RangeError(`shape must be positive integers, got [${shape}]`);
  }
  if (values.length !== count) {
    throw new RangeError(`${values.length} values do not fill shape [${shape}] (${count})`);
  }
  if (!littleEndian) throw new Error("big-endian hosts are not supported");
  const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
  return create(FieldSchema, {
    shape: shape.map(BigInt),
    dtype: dtypeOf(values),
    data,
    spacing: options.spacing ?? [],
    boundary: options.boundary ?? BoundaryCondition.UNSPECIFIED,
    boundaryValue: options.boundaryValue ?? 0,
    units: options.units ?? "",
  });
}

/** Decode a Field into a typed array (C order) and its shape. */
export function fromField(field: Field): { values: FieldArray; shape: number[] } {
  const shape = field.shape.map(Number);
  const itemsize = ITEMSIZE[field.dtype];
  if (itemsize === undefined) throw new RangeError(`unsupported dtype ${field.dtype}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 0 || field.data.byteLength !== count * itemsize) {
    throw new RangeError(`byte length ${field.data.byteLength} != prod(shape) ${count} x ${itemsize}`);
  }
  const bytes = new Uint8Array(field.data); // aligned copy with its own buffer (Buffer.slice would be a view)
  const buffer = bytes.buffer;
  switch (field.dtype) {
    case Dtype.FLOAT32:
      return { values: new Float32Array(buffer), shape };
    case Dtype.FLOAT64:
      return { values: new Float64Array(buffer), shape };
    case Dtype.INT8:
      return { values: new Int8Array(buffer), shape };
    default:
      return { values: new Int32Array(buffer), shape };
  }
}
