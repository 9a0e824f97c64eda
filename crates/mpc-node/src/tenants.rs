//! Per-application limits: a request rate (token bucket) and a share of the operations that
//! may run at once, so one application (tenant) cannot take every session slot of the node.
//! Both answer 429 with `Retry-After`. Applications without an `[[app_limits]]` entry are
//! limited only by the node's own limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::AppLimitsEntry;
use crate::error::ApiError;

struct Bucket {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens held.
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes a token, or says in how many whole seconds one will be there.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / self.rate;
        // At least one second: Retry-After counts whole seconds.
        Err(wait.ceil().clamp(1.0, 3600.0) as u64)
    }
}

struct Tenant {
    bucket: Option<Mutex<Bucket>>,
    operations: Option<(Arc<Semaphore>, usize)>,
}

/// The limits of every configured application.
#[derive(Default)]
pub struct Tenants {
    by_app: HashMap<String, Tenant>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants").field("apps", &self.by_app.len()).finish()
    }
}

/// A running operation's place in its application's share (released on drop).
#[derive(Debug)]
pub struct OperationSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Tenants {
    /// The limits of `entries` (validated by the configuration).
    pub fn new(entries: &[AppLimitsEntry]) -> Self {
        let now = Instant::now();
        let by_app = entries
            .iter()
            .map(|e| {
                let bucket = e.requests_per_second.map(|rate| {
                    let burst = f64::from(e.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32));
                    Mutex::new(Bucket { rate, burst, tokens: burst, last: now })
                });
                let operations =
                    e.max_concurrent_operations.map(|n| (Arc::new(Semaphore::new(n)), n));
                (e.app.clone(), Tenant { bucket, operations })
            })
            .collect();
        Self { by_app }
    }

    /// Counts one request of `app` against its rate.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] with the seconds until the next request is allowed.
    pub fn check_rate(&self, app: &str) -> Result<(), ApiError> {
        let Some(bucket) = self.by_app.get(app).and_then(|t| t.bucket.as_ref()) else {
            return Ok(());
        };
        // Nothing panics while holding it; a poisoned bucket is still a bucket.
        let mut bucket = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.take(Instant::now()).map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// A place for one operation of `app` in its share, held until the slot drops.
    ///
    /// # Errors
    /// [`ApiError::TooManyOperations`] when the share is full.
    pub fn start_operation(&self, app: &str) -> Result<OperationSlot, ApiError> {
        let Some((slots, limit)) = self.by_app.get(app).and_then(|t| t.operations.as_ref()) else {
            return Ok(OperationSlot { _permit: None });
        };
        match Arc::clone(slots).try_acquire_owned() {
            Ok(permit) => Ok(OperationSlot { _permit: Some(permit) }),
            Err(_) => Err(ApiError::TooManyOperations { limit: *limit }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn entry(rps: Option<f64>, burst: Option<u32>, ops: Option<usize>) -> AppLimitsEntry {
        AppLimitsEntry {
            app: "a".into(),
            requests_per_second: rps,
            burst,
            max_concurrent_operations: ops,
        }
    }

    #[test]
    fn the_rate_refills_and_says_when() {
        let t0 = Instant::now();
        let mut bucket = Bucket { rate: 2.0, burst: 3.0, tokens: 3.0, last: t0 };
        for _ in 0..3 {
            bucket.take(t0).unwrap();
        }
        assert_eq!(bucket.take(t0), Err(1));
        bucket.take(t0 + std::time::Duration::from_millis(500)).unwrap();
        assert!(bucket.take(t0 + std::time::Duration::from_millis(500)).is_err());
        // Never more than the burst, however long it was idle.
        let later = t0 + std::time::Duration::from_secs(100);
        for _ in 0..3 {
            bucket.take(later).unwrap();
        }
        assert!(bucket.take(later).is_err());
        let mut slow = Bucket { rate: 0.1, burst: 1.0, tokens: 1.0, last: t0 };
        slow.take(t0).unwrap();
        assert_eq!(slow.take(t0), Err(10));
        // Through the tenants: only the configured application is limited.
        let t = Tenants::new(&[entry(Some(1.0), Some(1), None)]);
        t.check_rate("a").unwrap();
        assert!(matches!(t.check_rate("a"), Err(ApiError::RateLimited { retry_after: 1 })));
        for _ in 0..100 {
            t.check_rate("b").unwrap();
        }
    }

    #[test]
    fn the_operation_share_is_released_with_the_slot() {
        let t = Tenants::new(&[entry(None, None, Some(2))]);
        let a = t.start_operation("a").unwrap();
        let _b = t.start_operation("a").unwrap();
        assert!(matches!(t.start_operation("a"), Err(ApiError::TooManyOperations { limit: 2 })));
        drop(a);
        t.start_operation("a").unwrap();
        t.start_operation("other").unwrap();
    }
}
