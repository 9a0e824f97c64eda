// Runs against a real cluster (`.ci/ts-client` starts `mpc-node dev --webhook …`):
// MPC_NODES = JSON [{url, apiKey}, …] of nodes 1..3, WEBHOOK_PORT and WEBHOOK_SECRET_FILE.

import assert from "node:assert/strict";
import { createPublicKey, randomBytes, verify as verifySignature } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { after, before, test } from "node:test";

import { MpcNodeClient, MpcNodeError, type Signature, verifyWebhook } from "../src/index.js";

const nodes: { url: string; apiKey: string }[] = JSON.parse(process.env.MPC_NODES ?? "[]");
const clients = nodes.map((n) => new MpcNodeClient(n.url, n.apiKey));
const secret = readFileSync(process.env.WEBHOOK_SECRET_FILE ?? "", "utf8").trim();
const deliveries: { headers: IncomingHttpHeaders; body: Buffer }[] = [];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    deliveries.push({ headers: req.headers, body: Buffer.concat(chunks) });
    res.writeHead(204).end();
  });
});
before(async () => {
  assert.equal(clients.length, 3, "MPC_NODES must list three nodes");
  await new Promise<void>((ok) => server.listen(Number(process.env.WEBHOOK_PORT), "127.0.0.1", ok));
});
after(() => server.close());

const sid = () => randomBytes(32).toString("hex");
const message = Buffer.from("hello from TypeScript");

/** The compressed secp256k1 point as a public key object (decompressed with BigInt). */
function publicKeyOf(compressedHex: string) {
  const p = 2n ** 256n - 2n ** 32n - 977n;
  const bytes = Buffer.from(compressedHex, "hex");
  const x = BigInt("0x" + bytes.subarray(1).toString("hex"));
  const pow = (b: bigint, e: bigint) => {
    let r = 1n;
    b %= p;
    for (; e > 0n; e >>= 1n, b = (b * b) % p) if (e & 1n) r = (r * b) % p;
    return r;
  };
  let y = pow((x ** 3n + 7n) % p, (p + 1n) / 4n);
  if ((y & 1n) !== BigInt(bytes[0] & 1)) y = p - y;
  const b64 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, "0"), "hex").toString("base64url");
  return createPublicKey({ key: { kty: "EC", crv: "secp256k1", x: b64(x), y: b64(y) }, format: "jwk" });
}

/** The signature verifies over SHA-256(message) with OpenSSL (node:crypto), not our code. */
function checkSignature(sig: Signature) {
  const key = publicKeyOf(sig.public_key ?? "");
  assert.ok(verifySignature("sha256", message, key, Buffer.from(sig.der ?? "", "hex")), "signature does not verify");
}

const keyId = `ts-${randomBytes(4).toString("hex")}`;

test("generate a 2-of-3 key on every node and sign with two", async () => {
  const session = { session_id: sid(), players: [1, 2, 3] };
  const keys = await Promise.all(
    clients.map((c) => c.generateKey({ key_id: keyId, threshold: 2, session })),
  );
  assert.ok(keys.every((k) => k.status === "READY" && k.public_key === keys[0].public_key));
  const req = { session: { session_id: sid(), players: [1, 2] }, message: message.toString("hex"), hash_algorithm: "SHA256" as const };
  const [a, b] = await Promise.all([clients[0].sign(keyId, req), clients[1].sign(keyId, req)]);
  assert.equal(a.der, b.der);
  assert.equal(a.public_key, keys[0].public_key);
  checkSignature(a);
  assert.equal((await clients[2].getKey(keyId)).status, "READY");
});

test("an asynchronous signature: 202, its outcome, and a signed webhook from each node", async () => {
  const req = { session: { session_id: sid(), players: [1, 3] }, message: message.toString("hex"), hash_algorithm: "SHA256" as const };
  const path = `/v1/keys/${keyId}/sign`;
  const [op1, op3] = await Promise.all([clients[0].startAsync(path, req), clients[2].startAsync(path, req)]);
  assert.equal(op1.operation, "sign");
  assert.notEqual(op1.operation_id, op3.operation_id);
  const [end1, end3] = await Promise.all([
    clients[0].waitForOperation(op1.operation_id),
    clients[2].waitForOperation(op3.operation_id),
  ]);
  for (const end of [end1, end3]) {
    assert.equal(end.status, "succeeded");
    assert.equal(end.http_status, 200);
  }
  const sig = end1.result as Signature;
  assert.equal(sig.der, (end3.result as Signature).der);
  checkSignature(sig);

  const deadline = Date.now() + 20_000;
  for (const id of [op1.operation_id, op3.operation_id]) {
    for (;;) {
      const got = deliveries.find((d) => d.headers["x-mpc-webhook-id"] === id);
      if (got) {
        const ts = got.headers["x-mpc-webhook-timestamp"] as string;
        const mac = got.headers["x-mpc-webhook-signature"] as string;
        assert.ok(verifyWebhook(secret, ts, mac, got.body), "webhook signature");
        assert.ok(!verifyWebhook(secret, ts, mac, Buffer.concat([got.body, Buffer.from(" ")])), "tampered body accepted");
        assert.ok(!verifyWebhook(secret, ts, mac, got.body, 300, Number(ts) + 301), "old delivery accepted");
        assert.equal(JSON.parse(got.body.toString()).status, "succeeded");
        break;
      }
      assert.ok(Date.now() < deadline, `no webhook for ${id}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

test("errors carry the status and the code", async () => {
  await assert.rejects(clients[0].getKey("no-such-key"), (e: unknown) => e instanceof MpcNodeError && e.status === 404 && e.code === "not_found");
  await assert.rejects(clients[0].getKey("bad key!"), (e: unknown) => e instanceof MpcNodeError && e.status === 400);
  await assert.rejects(new MpcNodeClient(nodes[0].url, "wrong").listKeys(), (e: unknown) => e instanceof MpcNodeError && e.status === 401);
});
