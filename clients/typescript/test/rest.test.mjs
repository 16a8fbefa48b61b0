// The REST client against a live server (the Python test starts one and passes its URL).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DiffusionService, IdfRestError, KeyService, PredictService, ProofService, RestClient, fromField, toField } from "../dist/index.js";

const base = process.env.IDF_REST_URL;

test("Predict over REST", { skip: !base }, async () => {
  const client = new RestClient(base);
  const values = new Float64Array(64).map((_, i) => Math.sin(i));
  const reply = await client.unary(PredictService.method.predict, {
    history: [toField(values, [8, 8])],
    steps: 2,
    transport: { diffusivity: 0.1 },
  });
  assert.equal(reply.frames.length, 2);
  const { values: last, shape } = fromField(reply.frames[1]);
  assert.deepEqual(shape, [8, 8]);
  const total = (xs) => xs.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total(last) - total(values)) < 1e-12); // periodic: conserved
});

test("errors carry the status and field violations", { skip: !base }, async () => {
  const client = new RestClient(base);
  await assert.rejects(client.unary(PredictService.method.predict, { steps: 1 }), (e) => {
    assert.ok(e instanceof IdfRestError);
    assert.equal(e.httpStatus, 400);
    assert.equal(e.code, 3);
    return true;
  });
});

test("Sample streams progress then samples", { skip: !base }, async () => {
  const client = new RestClient(base);
  const kinds = [];
  for await (const message of client.stream(DiffusionService.method.sample, {
    energyModel: { name: "ising" },
    shape: [8n, 8n],
    sampleCount: 1,
    sampler: { steps: 20 },
  })) {
    kinds.push(message.event.case);
  }
  assert.equal(kinds.at(-1), "result");
  assert.ok(kinds.includes("progress"));
});

const authBase = process.env.IDF_REST_AUTH_URL;

test("credentials: an API key is sent as a bearer token", { skip: !authBase }, async () => {
  await assert.rejects(new RestClient(authBase).unary(ProofService.method.listProofs, {}), (e) => {
    assert.ok(e instanceof IdfRestError);
    assert.equal(e.httpStatus, 401);
    return true;
  });
  const client = new RestClient(authBase, { apiKey: process.env.IDF_API_KEY });
  const page = await client.unary(ProofService.method.listProofs, {});
  assert.deepEqual(page.proofs, []);
  const token = await client.unary(KeyService.method.issueToken, {});
  assert.equal(token.tokenType, "Bearer");
  const viaToken = new RestClient(authBase, { apiKey: token.accessToken });
  assert.deepEqual((await viaToken.unary(ProofService.method.listProofs, {})).proofs, []);
});
