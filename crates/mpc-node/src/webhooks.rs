//! Webhooks: when an asynchronous operation ends, the node POSTs it (the JSON of
//! `GET /v1/operations/{id}`) to its application's `[[webhooks]]` URL.
//!
//! Each delivery is signed: `X-Mpc-Webhook-Timestamp` (Unix seconds) and
//! `X-Mpc-Webhook-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, with the
//! operation id in `X-Mpc-Webhook-Id`. A receiver checks the signature, refuses timestamps
//! outside its replay window (see [`verify`]; the docs use 5 minutes) and ignores an id it has
//! seen. A delivery that is not answered with a 2xx is retried with backoff (1 s, 2 s, 4 s, …,
//! at most 5 min apart, [`ATTEMPTS`] in all, about 13 minutes), each attempt signed afresh.
//! Deliveries live in this process: one still being retried when the node stops is not sent
//! again (the outcome stays in `GET /v1/operations/{id}`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use mpc_node_client::Client;
use mpc_node_client::api::OperationInfo;
use sha2::Sha256;
use tracing::{info, warn};

use crate::config::Webhook;

/// Attempts per delivery.
pub const ATTEMPTS: u32 = 11;
/// Longest wait between attempts.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// Time allowed for one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// `v1=<hex HMAC-SHA256(secret, timestamp "." body)>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!("v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a delivery as a receiver should: the signature (in constant time) and a timestamp
/// within `window` of `now` (Unix seconds).
///
/// # Errors
/// What is wrong, for the receiver's log.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: u64,
    window: Duration,
) -> Result<(), &'static str> {
    let ts: u64 = timestamp.trim().parse().map_err(|_| "malformed timestamp")?;
    if ts.abs_diff(now) > window.as_secs() {
        return Err("timestamp outside the replay window");
    }
    let hex_sig = signature.trim().strip_prefix("v1=").ok_or("not a v1 signature")?;
    let sig = hex::decode(hex_sig).map_err(|_| "malformed signature")?;
    mac(secret, ts, body).verify_slice(&sig).map_err(|_| "signature does not match")
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

struct Target {
    hook: Webhook,
    client: Client,
}

/// The webhooks of every application.
#[derive(Default)]
pub struct Webhooks {
    by_app: HashMap<String, Arc<Target>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("apps", &self.by_app.keys()).finish()
    }
}

impl Webhooks {
    /// The configured webhooks.
    ///
    /// # Errors
    /// A URL the HTTP client does not take.
    pub fn new(hooks: &[Webhook]) -> Result<Self, String> {
        let mut by_app = HashMap::new();
        for hook in hooks {
            let client = Client::new(&hook.base_url, "")
                .map_err(|e| format!("webhooks {:?}: {e}", hook.app))?
                .with_timeout(ATTEMPT_TIMEOUT);
            by_app.insert(hook.app.clone(), Arc::new(Target { hook: hook.clone(), client }));
        }
        Ok(Self { by_app })
    }

    /// Sends `info` to `app`'s webhook, if it has one, in the background (with retries).
    pub fn deliver(&self, app: &str, info: &OperationInfo) {
        let Some(target) = self.by_app.get(app).cloned() else { return };
        let Ok(body) = serde_json::to_vec(info) else { return };
        let id = info.operation_id.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=ATTEMPTS {
                match send(&target, &id, &body).await {
                    Ok(()) => {
                        info!(app = %target.hook.app, operation_id = %id, attempt, "webhook delivered");
                        return;
                    }
                    Err(e) => warn!(
                        app = %target.hook.app, operation_id = %id, attempt, error = %e,
                        "webhook delivery failed"
                    ),
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_DELAY);
                }
            }
            warn!(app = %target.hook.app, operation_id = %id, "webhook given up");
        });
    }
}

async fn send(target: &Target, id: &str, body: &[u8]) -> Result<(), String> {
    let ts = now_secs();
    let sig = signature(&target.hook.secret, ts, body);
    let ts = ts.to_string();
    let headers = [
        ("x-mpc-webhook-id", id),
        ("x-mpc-webhook-timestamp", ts.as_str()),
        ("x-mpc-webhook-signature", sig.as_str()),
    ];
    let (status, _) = target
        .client
        .raw_with_headers(Method::POST, &target.hook.path, Some(body.to_vec()), false, &headers)
        .await
        .map_err(|e| e.to_string())?;
    if status.is_success() { Ok(()) } else { Err(format!("answered {status}")) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_or_an_old_timestamp_does_not() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let body = br#"{"operation_id":"x"}"#;
        let sig = signature(secret, 1_000, body);
        let window = Duration::from_secs(300);
        assert_eq!(verify(secret, "1000", &sig, body, 1_100, window), Ok(()));
        assert!(verify(secret, "1000", &sig, b"{}", 1_100, window).is_err());
        assert!(verify(b"another secret", "1000", &sig, body, 1_100, window).is_err());
        assert!(verify(secret, "1001", &sig, body, 1_100, window).is_err());
        assert_eq!(
            verify(secret, "1000", &sig, body, 1_400, window),
            Err("timestamp outside the replay window")
        );
        assert!(verify(secret, "1000", "v2=00", body, 1_100, window).is_err());
        // Pinned: the recipe in docs/mpc-node.md computes the same.
        assert_eq!(
            signature(b"k", 1, b"b"),
            format!("v1={}", {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(b"k").unwrap();
                m.update(b"1.b");
                hex::encode(m.finalize().into_bytes())
            })
        );
    }
}
