// The TypeScript SDK of Industriverse IDF: message types and service descriptors generated from
// proto/idf/v1 (src/gen, never edited by hand), plus typed-array helpers for Field.
export * from "./gen/idf/v1/field_pb.js";
export * from "./gen/idf/v1/predict_pb.js";
export * from "./gen/idf/v1/diffusion_pb.js";
export * from "./gen/idf/v1/proof_pb.js";
export * from "./gen/idf/v1/market_pb.js";
export * from "./gen/idf/v1/telemetry_pb.js";
export * from "./gen/idf/v1/keys_pb.js";
export { fromField, toField, type FieldArray, type FieldOptions } from "./field.js";
export { IdfRestError, RestClient, route, type RestClientOptions } from "./rest.js";
