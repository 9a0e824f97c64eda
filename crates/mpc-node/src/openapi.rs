//! The OpenAPI 3.0 document served at `/openapi.json` (hand-written; a test checks that it is
//! valid JSON and lists every route of the router).

/// The document.
pub const DOCUMENT: &str = r##"{
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
