// A typed client of the mpc-node SDK API. The request and response types come from the node's
// OpenAPI document (`openapi.json`, the document a node serves at /openapi.json), generated
// into `schema.d.ts` by openapi-typescript at build time.

import { createHmac, timingSafeEqual } from "node:crypto";

import type { components } from "./schema.js";

type Schemas = components["schemas"];
export type SessionConfig = Schemas["SessionConfig"];
export type GenerateKeyRequest = Schemas["GenerateKeyRequest"];
export type KeyInfo = Schemas["KeyInfo"];
export type KeyList = Schemas["KeyList"];
export type SignRequest = Schemas["SignRequest"];
export type Signature = Schemas["Signature"];
export type PublicKey = Schemas["PublicKey"];
export type PresignRequest = Schemas["PresignRequest"];
export type PresignResponse = Schemas["PresignResponse"];
export type RefreshRequest = Schemas["RefreshRequest"];
export type Operation = Schemas["Operation"];

/** An error answer of the node: its HTTP status and `{"error": {code, message}}`. */
export class MpcNodeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "MpcNodeError";
  }
}

/** A client of one node (each participant calls its own node with the same session). */
export class MpcNodeClient {
  private readonly baseUrl: string;

  /** `baseUrl` is `http(s)://host:port`; `apiKey` the application's key on that node. */
  constructor(
    baseUrl: string,
    private readonly apiKey: string,
    private readonly timeoutMs = 120_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; value: T }> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: {
        authorization: `Bearer ${this.apiKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let value: unknown;
    try {
      value = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      throw new MpcNodeError(res.status, "unknown", text);
    }
    if (!res.ok) {
      const e = (value as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new MpcNodeError(res.status, e?.code ?? "unknown", e?.message ?? text);
    }
    return { status: res.status, value: value as T };
  }

  /** `POST /v1/keys`: answers when the key is READY. */
  async generateKey(req: GenerateKeyRequest): Promise<KeyInfo> {
    return (await this.request<KeyInfo>("POST", "/v1/keys", req)).value;
  }

  /** `GET /v1/keys`. */
  async listKeys(): Promise<KeyList> {
    return (await this.request<KeyList>("GET", "/v1/keys")).value;
  }

  /** `GET /v1/keys/{keyId}`. */
  async getKey(keyId: string): Promise<KeyInfo> {
    return (await this.request<KeyInfo>("GET", `/v1/keys/${encodeURIComponent(keyId)}`)).value;
  }

  /** `POST /v1/keys/{keyId}/sign`. */
  async sign(keyId: string, req: SignRequest): Promise<Signature> {
    const path = `/v1/keys/${encodeURIComponent(keyId)}/sign`;
    return (await this.request<Signature>("POST", path, req)).value;
  }

  /** `GET /v1/keys/{keyId}/public-key?path=…`. */
  async publicKey(keyId: string, path = "m"): Promise<PublicKey> {
    const q = `?path=${encodeURIComponent(path)}`;
    const url = `/v1/keys/${encodeURIComponent(keyId)}/public-key${q}`;
    return (await this.request<PublicKey>("GET", url)).value;
  }

  /** `POST /v1/keys/{keyId}/presign`. */
  async presign(keyId: string, req: PresignRequest): Promise<PresignResponse> {
    const path = `/v1/keys/${encodeURIComponent(keyId)}/presign`;
    return (await this.request<PresignResponse>("POST", path, req)).value;
  }

  /** `POST /v1/keys/{keyId}/refresh`. */
  async refresh(keyId: string, req: RefreshRequest): Promise<KeyInfo> {
    const path = `/v1/keys/${encodeURIComponent(keyId)}/refresh`;
    return (await this.request<KeyInfo>("POST", path, req)).value;
  }

  /**
   * Starts `POST path` as an asynchronous operation (`Prefer: respond-async`): answers at once
   * with the operation (202). A request refused before its session starts throws at once.
   */
  async startAsync(path: string, body: unknown): Promise<Operation> {
    const { status, value } = await this.request<Operation>("POST", path, body, {
      prefer: "respond-async",
    });
    if (status !== 202) {
      throw new MpcNodeError(status, "unexpected", `expected 202, got ${status}`);
    }
    return value;
  }

  /** `GET /v1/operations/{id}`. */
  async getOperation(id: string): Promise<Operation> {
    return (await this.request<Operation>("GET", `/v1/operations/${encodeURIComponent(id)}`)).value;
  }

  /** Polls an operation until it is no longer running (or `timeoutMs` passes). */
  async waitForOperation(id: string, timeoutMs = 120_000, everyMs = 100): Promise<Operation> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const op = await this.getOperation(id);
      if (op.status !== "running") return op;
      if (Date.now() > deadline) throw new Error(`operation ${id} still running after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/**
 * Checks a webhook delivery as a receiver must: `X-Mpc-Webhook-Signature` is
 * `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>` (compared in constant time) and
 * `X-Mpc-Webhook-Timestamp` is within `windowSecs` of now. Also drop an
 * `X-Mpc-Webhook-Id` already processed (a retry).
 */
export function verifyWebhook(
  secret: string | Buffer,
  timestamp: string | undefined,
  signature: string | undefined,
  body: Buffer,
  windowSecs = 300,
  nowSecs = Math.floor(Date.now() / 1000),
): boolean {
  if (timestamp === undefined || signature === undefined || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowSecs - Number(timestamp)) > windowSecs) return false;
  const mac = createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest("hex");
  const expected = Buffer.from(`v1=${mac}`);
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
