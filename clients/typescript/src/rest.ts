// A small REST client for browsers and Node: calls any RPC of the generated services through
// the server's REST/JSON face (`idf serve --rest-port`), routed by the same google.api.http
// annotations the server transcodes with. Unary RPCs return the decoded response; server
// streams yield each message of the NDJSON body.
import {
  create,
  fromJson,
  getOption,
  toJson,
  type DescMessage,
  type DescMethod,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { http } from "./gen/google/api/annotations_pb.js";

/** A failed call: the HTTP status and the server's google.rpc.Status (code, message, details). */
export class IdfRestError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: number,
    message: string,
    readonly details: unknown[] = [],
  ) {
    super(message);
    this.name = "IdfRestError";
  }
}

export interface RestClientOptions {
  /** An API key (idf_…) or a bearer token (a JWT from /oauth2/token), sent as `authorization: Bearer …`. */
  apiKey?: string;
  /** Extra headers on every call, e.g. { "x-idf-account": "market/accounts/me" }. */
  headers?: Record<string, string>;
  /** Deadline of each call in seconds (sent as x-idf-timeout). */
  timeoutSeconds?: number;
  /** fetch implementation (defaults to the global one). */
  fetch?: typeof globalThis.fetch;
}

type Verb = "get" | "post" | "put" | "patch" | "delete";

/** The HTTP verb and concrete path of a method for a request (path variables filled in). */
export function route(method: DescMethod, request: Record<string, unknown>): { verb: Verb; path: string; body: string } {
  const rule = getOption(method, http);
  const verb = rule.pattern.case as Verb | undefined;
  if (!verb || typeof rule.pattern.value !== "string") {
    throw new Error(`${method.name} has no google.api.http binding`);
  }
  const path = rule.pattern.value.replace(/\{([^}=]+)(?:=[^}]*)?\}/g, (_, field: string) => {
    let value: unknown = request;
    for (const part of field.split(".")) {
      const key = part.replace(/_([a-z])/g, (_m: string, c: string) => c.toUpperCase());
      value = (value as Record<string, unknown> | undefined)?.[key];
    }
    if (value === undefined || value === "") throw new Error(`${method.name} needs ${field} for its path`);
    return String(value).split("/").map(encodeURIComponent).join("/");
  });
  return { verb, path, body: rule.body };
}

export class RestClient {
  private readonly fetch: typeof globalThis.fetch;

  constructor(
    readonly baseUrl: string,
    private readonly options: RestClientOptions = {},
  ) {
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private async send<I extends DescMessage>(method: DescMethod & { input: I }, init: MessageInitShape<I>): Promise<Response> {
    const request = create(method.input, init);
    const json = toJson(method.input, request) as Record<string, unknown>;
    const { verb, path, body } = route(method, json);
    const headers: Record<string, string> = { "content-type": "application/json", ...this.options.headers };
    if (this.options.apiKey) headers["authorization"] = `Bearer ${this.options.apiKey}`;
    if (this.options.timeoutSeconds !== undefined) headers["x-idf-timeout"] = String(this.options.timeoutSeconds);
    let url = this.baseUrl.replace(/\/$/, "") + path;
    if (verb === "get") {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(json)) {
        if (typeof value !== "object") query.set(key, String(value));
      }
      const qs = query.toString();
      if (qs) url += "?" + qs;
    }
    const response = await this.fetch(url, {
      method: verb.toUpperCase(),
      headers,
      body: body === "*" ? JSON.stringify(json) : undefined,
    });
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  /** Call a unary RPC, e.g. `client.unary(PredictService.method.predict, {...})`. */
  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    init: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const response = await this.send(method, init);
    return fromJson(method.output, await response.json(), { ignoreUnknownFields: true });
  }

  /** Iterate a server-streaming RPC, e.g. `client.stream(DiffusionService.method.sample, {...})`. */
  async *stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    init: MessageInitShape<I>,
  ): AsyncGenerator<MessageShape<O>> {
    const response = await this.send(method, init);
    const text = await response.text();
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const item = JSON.parse(line) as { result?: unknown; error?: { code?: number; message?: string; details?: unknown[] } };
      if (item.error) throw new IdfRestError(response.status, item.error.code ?? 2, item.error.message ?? "", item.error.details ?? []);
      yield fromJson(method.output, item.result as never, { ignoreUnknownFields: true });
    }
  }
}

async function errorFrom(response: Response): Promise<IdfRestError> {
  try {
    const status = (await response.json()) as { code?: number; message?: string; details?: unknown[] };
    return new IdfRestError(response.status, status.code ?? 2, status.message ?? response.statusText, status.details ?? []);
  } catch {
    return new IdfRestError(response.status, 2, response.statusText);
  }
}
