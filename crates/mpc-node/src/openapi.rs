//! The OpenAPI 3.0 document served at `/openapi.json`: the routes and schemas below, completed
//! by [`document`] with what every route shares (its error responses by what the route takes,
//! the `key_id` pattern), so those cannot be forgotten on one route. A test checks that it lists
//! every route of the router, and the CI's API fuzzing run checks the served node against it.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// The routes and schemas (completed by [`document`]).
const BASE: &str = r##"{
  "openapi": "3.0.3",
  "info": {
    "title": "mpc-node SDK API",
    "version": "1",
    "description": "Threshold ECDSA (DKLs23, secp256k1) key generation and signing. Every participant's SDK client calls its own node with the same session configuration; the nodes meet through the relay. Byte strings are lowercase hex. Every error is {\"error\":{\"code\",\"message\"}}."
  },
  "components": {
    "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer" } },
    "schemas": {
      "SessionConfig": {
        "type": "object", "required": ["session_id", "players"], "additionalProperties": false,
        "properties": {
          "session_id": { "type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "32 random bytes; never reuse" },
          "players": { "type": "array", "items": { "type": "integer", "minimum": 1, "maximum": 255 } },
          "public_keys": { "type": "object", "additionalProperties": { "type": "string" }, "description": "player index -> ed25519:<hex> | p256:<hex>, for players the node does not know statically (static configuration wins)" }
        }
      },
      "GenerateKeyRequest": {
        "type": "object", "required": ["threshold", "session"], "additionalProperties": false,
        "properties": {
          "key_id": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" },
          "threshold": { "type": "integer", "minimum": 2 },
          "curve": { "type": "string", "enum": ["secp256k1"] },
          "session": { "$ref": "#/components/schemas/SessionConfig" }
        }
      },
      "KeyInfo": {
        "type": "object",
        "properties": {
          "key_id": { "type": "string" }, "status": { "type": "string", "enum": ["PENDING", "READY", "ERROR"] },
          "error": { "type": "string" }, "threshold": { "type": "integer" }, "parties": { "type": "integer" },
          "player": { "type": "integer" }, "epoch": { "type": "integer" }, "public_key": { "type": "string" },
          "chain_code": { "type": "string" }, "ethereum_address": { "type": "string" },
          "staged_epoch": { "type": "integer", "description": "epoch of a refresh/reshare share this node holds staged but could not confirm; its peers may be at it" },
          "created_at": { "type": "integer" }, "updated_at": { "type": "integer" }
        }
      },
      "KeyList": { "type": "object", "properties": { "keys": { "type": "array", "items": { "$ref": "#/components/schemas/KeyInfo" } } } },
      "SignRequest": {
        "type": "object", "required": ["session"], "additionalProperties": false,
        "properties": {
          "session": { "$ref": "#/components/schemas/SessionConfig" },
          "message_hash": { "type": "string", "description": "32-byte prehash; or give message + hash_algorithm" },
          "message": { "type": "string", "description": "hex message" },
          "hash_algorithm": { "type": "string", "enum": ["KECCAK256", "SHA256"] },
          "path": { "type": "string", "example": "m/44/60/0/0/0", "description": "non-hardened BIP32 path" },
          "presignature_id": { "type": "string", "description": "finish this stored presignature (must equal session.session_id; players and path as when presigning)" }
        }
      },
      "Signature": {
        "type": "object",
        "properties": {
          "key_id": { "type": "string" }, "message_hash": { "type": "string" }, "r": { "type": "string" },
          "s": { "type": "string" }, "recovery_id": { "type": "integer" }, "der": { "type": "string" },
          "rsv": { "type": "string" }, "public_key": { "type": "string" }
        }
      },
      "PublicKey": {
        "type": "object",
        "properties": {
          "key_id": { "type": "string" }, "path": { "type": "string" }, "public_key": { "type": "string" },
          "chain_code": { "type": "string" }, "ethereum_address": { "type": "string" }
        }
      },
      "PresignRequest": {
        "type": "object", "required": ["session", "count"], "additionalProperties": false,
        "properties": { "session": { "$ref": "#/components/schemas/SessionConfig" }, "count": { "type": "integer", "minimum": 1, "maximum": 100 }, "path": { "type": "string" } }
      },
      "PresignResponse": { "type": "object", "properties": { "key_id": { "type": "string" }, "presignature_ids": { "type": "array", "items": { "type": "string" } } } },
      "RefreshRequest": { "type": "object", "required": ["session"], "additionalProperties": false, "properties": { "session": { "$ref": "#/components/schemas/SessionConfig" } } },
      "ReshareRequest": {
        "type": "object", "required": ["session", "old_players", "new_threshold"], "additionalProperties": false,
        "properties": { "session": { "$ref": "#/components/schemas/SessionConfig" }, "old_players": { "type": "array", "items": { "type": "integer" } }, "new_threshold": { "type": "integer", "minimum": 2 },
          "spec": { "type": "string", "description": "from reshare-spec; required at a node joining without a share" } }
      },
      "ReshareResponse": { "type": "object", "properties": { "key": { "$ref": "#/components/schemas/KeyInfo" }, "removed": { "type": "boolean" } } },
      "ImportRequest": {
        "type": "object", "required": ["key_id", "threshold", "session", "dealer", "public_key", "chain_code"], "additionalProperties": false,
        "properties": { "key_id": { "type": "string" }, "threshold": { "type": "integer" }, "session": { "$ref": "#/components/schemas/SessionConfig" },
          "dealer": { "type": "integer" }, "public_key": { "type": "string" }, "chain_code": { "type": "string" }, "private_key": { "type": "string", "description": "only to the dealer's node" } }
      },
      "ExportRequest": {
        "type": "object", "required": ["session", "recipient_index", "recipient_identity", "recipient_x25519", "confirmation"], "additionalProperties": false,
        "properties": { "session": { "$ref": "#/components/schemas/SessionConfig" }, "recipient_index": { "type": "integer" }, "recipient_identity": { "type": "string" },
          "recipient_x25519": { "type": "string" }, "confirmation": { "type": "string", "enum": ["I understand the exported key is no longer threshold-protected"] } }
      },
      "ExportResponse": { "type": "object", "properties": { "key_id": { "type": "string" }, "setup": { "type": "string" } } },
      "Xpub": { "type": "object", "properties": { "key_id": { "type": "string" }, "path": { "type": "string" }, "xpub": { "type": "string" } } },
      "Operation": {
        "type": "object", "required": ["operation_id", "operation", "status", "created_at", "updated_at"],
        "properties": {
          "operation_id": { "type": "string", "pattern": "^[0-9a-f]{32}$" },
          "operation": { "type": "string", "enum": ["generate", "sign", "presign", "refresh", "reshare", "export", "import"] },
          "status": { "type": "string", "enum": ["running", "succeeded", "failed"] },
          "http_status": { "type": "integer", "description": "once ended: the status the synchronous call would have answered" },
          "result": { "type": "object", "description": "once succeeded: the synchronous call's answer" },
          "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } }, "description": "once failed (code interrupted: the node stopped while it ran)" },
          "created_at": { "type": "integer" }, "updated_at": { "type": "integer" }
        }
      },
      "Error": {
        "type": "object",
        "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
      }
    },
    "parameters": {
      "Prefer": { "name": "Prefer", "in": "header", "required": false, "schema": { "type": "string", "example": "respond-async" },
        "description": "respond-async: answer 202 at once with the operation (its Location is /v1/operations/{operation_id}); the same request again names the same operation" }
    },
    "responses": {
      "Accepted": { "description": "started asynchronously (Prefer: respond-async)", "headers": { "Location": { "schema": { "type": "string" } } },
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Operation" } } } },
      "Error": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  },
  "security": [{ "apiKey": [] }],
  "paths": {
    "/healthz": { "get": { "security": [], "summary": "liveness", "responses": { "200": { "description": "ok" } } } },
    "/readyz": { "get": { "security": [], "summary": "readiness: connected to the relay and not stopping", "responses": { "200": { "description": "ready" }, "503": { "description": "not_ready (the message says what is missing)" } } } },
    "/metrics": { "get": { "security": [], "summary": "Prometheus metrics", "responses": { "200": { "description": "OpenMetrics text (application/openmetrics-text; version=1.0.0)" } } } },
    "/openapi.json": { "get": { "security": [], "summary": "this document", "responses": { "200": { "description": "OpenAPI 3.0" } } } },
    "/v1/keys": {
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }],
        "summary": "generate a key (returns when READY; an existing READY key id is returned unchanged; PENDING or ERROR -> 409)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GenerateKeyRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "READY key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KeyInfo" } } } },
          "400": { "$ref": "#/components/responses/Error" }, "401": { "$ref": "#/components/responses/Error" }, "409": { "$ref": "#/components/responses/Error" },
          "413": { "$ref": "#/components/responses/Error" }, "502": { "$ref": "#/components/responses/Error" }, "503": { "$ref": "#/components/responses/Error" }, "504": { "$ref": "#/components/responses/Error" } }
      },
      "get": { "summary": "list the application's keys", "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "keys", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KeyList" } } } }, "401": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "get": { "summary": "one key", "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KeyInfo" } } } }, "404": { "$ref": "#/components/responses/Error" } } },
      "delete": { "summary": "destroy this node's share (crypto-shredding)", "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "deleted" }, "404": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/sign": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "sign with the session's players",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/SignRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "signature", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Signature" } } } },
          "400": { "$ref": "#/components/responses/Error" }, "404": { "$ref": "#/components/responses/Error" }, "409": { "$ref": "#/components/responses/Error" },
          "502": { "$ref": "#/components/responses/Error" }, "504": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/public-key": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } },
                     { "name": "path", "in": "query", "required": false, "schema": { "type": "string", "example": "m/44/60/0/0/0" } }],
      "get": { "summary": "public key, chain code and Ethereum address at a path", "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "public key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PublicKey" } } } }, "404": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/xpub": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } },
                     { "name": "path", "in": "query", "required": false, "schema": { "type": "string" } },
                     { "name": "network", "in": "query", "required": false, "schema": { "type": "string", "enum": ["mainnet", "testnet"] } }],
      "get": { "summary": "Base58Check extended public key at a path", "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "xpub", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Xpub" } } } }, "404": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/presign": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "create count presignatures with the session's players (finish one with sign + presignature_id)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PresignRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "ids", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PresignResponse" } } } }, "400": { "$ref": "#/components/responses/Error" }, "409": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/refresh": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "refresh: new shares of the same key (all players take part; presignatures and bans are dropped)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/RefreshRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KeyInfo" } } } }, "400": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/reshare": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "reshare to a new committee (session.players = 1..=n') and threshold; dealers are old_players",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReshareRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "result", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReshareResponse" } } } }, "400": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/reshare-spec": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "summary": "the public reshare spec (hex) a node without a share needs to join the new committee; runs no protocol",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReshareRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "spec", "content": { "application/json": { "schema": { "type": "object", "properties": { "key_id": { "type": "string" }, "spec": { "type": "string" } } } } } }, "400": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/{key_id}/export": {
      "parameters": [{ "name": "key_id", "in": "path", "required": true, "schema": { "type": "string" } }],
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "export: send this node's share, encrypted and signed, to the recipient (explicit confirmation required); the answer's setup is what the recipient runs",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExportRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "sent", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExportResponse" } } } }, "400": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/operations/{operation_id}": {
      "parameters": [{ "name": "operation_id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" } }],
      "get": { "summary": "an asynchronous operation of this application (kept 7 days after it ended; also after a restart and on every replica)",
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "200": { "description": "operation", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Operation" } } } },
          "401": { "$ref": "#/components/responses/Error" }, "404": { "$ref": "#/components/responses/Error" } } }
    },
    "/v1/keys/import": {
      "post": { "parameters": [{ "$ref": "#/components/parameters/Prefer" }], "summary": "import an existing private key: every player's node gets the same request, only the dealer's node gets private_key; lifecycle as for generation",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ImportRequest" } } } },
        "responses": { "429": { "$ref": "#/components/responses/Error" }, "202": { "$ref": "#/components/responses/Accepted" }, "200": { "description": "READY key", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/KeyInfo" } } } }, "400": { "$ref": "#/components/responses/Error" }, "409": { "$ref": "#/components/responses/Error" } } }
    }
  }
}"##;

/// The pattern of a key id (as `mpc_node_client::session::check_key_id` checks it).
const KEY_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";

/// The operations that run a session (and so may answer 202, 409, 502, 503 and 504).
const SESSION_OPERATIONS: [&str; 7] = [
    "/v1/keys",
    "/v1/keys/{key_id}/sign",
    "/v1/keys/{key_id}/presign",
    "/v1/keys/{key_id}/refresh",
    "/v1/keys/{key_id}/reshare",
    "/v1/keys/{key_id}/export",
    "/v1/keys/import",
];

/// The error statuses of one operation, by what it takes.
fn error_statuses(path: &str, method: &str, op: &Value, path_params: bool) -> Vec<&'static str> {
    let mut codes = vec!["401", "429", "500"];
    let has_query =
        op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    if path_params || has_query || op.get("requestBody").is_some() {
        codes.push("400");
    }
    if path_params {
        codes.extend(["404", "409"]);
    }
    if op.get("requestBody").is_some() {
        codes.push("413");
    }
    if method == "post" && SESSION_OPERATIONS.contains(&path) {
        codes.extend(["409", "502", "503", "504"]);
    }
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The completed document.
fn build() -> Value {
    let Ok(mut doc) = serde_json::from_str::<Value>(BASE) else { return json!({}) };
    let error = json!({ "$ref": "#/components/responses/Error" });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return doc };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        // Path parameters: the key id's pattern.
        let mut path_params = false;
        if let Some(params) = item.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in params.iter_mut() {
                if p["in"] == "path" {
                    path_params = true;
                    if p["name"] == "key_id" {
                        p["schema"] = json!({ "type": "string", "pattern": KEY_ID_PATTERN });
                    }
                }
                // Query parameters of a path item are the operation's.
            }
        }
        let shared_query = item
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
        for (method, op) in item.iter_mut() {
            if method == "parameters" {
                continue;
            }
            let public = op.get("security").and_then(Value::as_array).is_some_and(Vec::is_empty);
            if public {
                continue;
            }
            let mut codes = error_statuses(path, method, op, path_params);
            if shared_query && !codes.contains(&"400") {
                codes.push("400");
            }
            if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                for code in codes {
                    responses.entry(code).or_insert_with(|| error.clone());
                }
            }
        }
    }
    doc
}

/// The document served at `/openapi.json`.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| build().to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_authenticated_operation_lists_its_errors() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 16);
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" || op.get("security").is_some() {
                    continue;
                }
                let responses = op["responses"].as_object().unwrap();
                for code in ["401", "429", "500"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                if path.contains("{key_id}") {
                    assert!(responses.contains_key("404"), "{method} {path} lacks 404");
                }
            }
        }
        let sign = &doc["paths"]["/v1/keys/{key_id}/sign"];
        assert_eq!(sign["parameters"][0]["schema"]["pattern"], KEY_ID_PATTERN);
        for code in ["202", "400", "409", "413", "502", "503", "504"] {
            assert!(sign["post"]["responses"].get(code).is_some(), "sign lacks {code}");
        }
    }
}
