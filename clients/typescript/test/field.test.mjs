// Round trips of the Field helpers, and bytes made by the Python SDK decoded here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FieldSchema, fromField, toField, Dtype } from "../dist/index.js";

test("float32 round trip through the wire format", () => {
  const values = new Float32Array([1.5, -2, 3.25, 4, 5, 6]);
  const field = toField(values, [2, 3], { spacing: [0.5, 0.5] });
  const back = fromField(fromBinary(FieldSchema, toBinary(FieldSchema, field)));
  assert.deepEqual(back.shape, [2, 3]);
  assert.deepEqual(Array.from(back.values), Array.from(values));
});

test("shape and length must agree", () => {
  assert.throws(() => toField(new Float64Array(5), [2, 3]), RangeError);
  const field = toField(new Float64Array(6), [2, 3]);
  field.data = field.data.slice(1);
  assert.throws(() => fromField(field), RangeError);
});

test("decodes a Field encoded by the Python SDK", { skip: !process.env.IDF_PY_FIELD }, () => {
  const field = fromBinary(FieldSchema, readFileSync(process.env.IDF_PY_FIELD));
  assert.equal(field.dtype, Dtype.FLOAT64);
  const { values, shape } = fromField(field);
  assert.deepEqual(shape, [3, 4]);
  assert.deepEqual(Array.from(values), Array.from({ length: 12 }, (_, i) => i / 4));
  assert.deepEqual(field.spacing, [0.25, 2]);
});
