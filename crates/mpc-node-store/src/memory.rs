//! In-memory [`Store`] for tests: the same rules and semantics as the SQLite store, without
//! persistence or encryption.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard};

use zeroize::Zeroizing;

use crate::clock::now_secs;
use crate::error::StoreError;
use crate::record::{
    CreateOutcome, KeyRecord, KeyStatus, NewShare, OperationEnd, OperationRecord, OperationState,
    ReadyKey, StagedShare,
};
use crate::rules::{
    check_app_key, check_can_mark_error, check_can_mark_ready, check_new_epoch, check_operation,
    check_params, check_presig_id, check_ready, operation_cutoffs, truncate_reason,
};
use crate::store::{Store, guard_result};

struct Entry {
    record: KeyRecord,
    share: Option<Zeroizing<Vec<u8>>>,
    presigs: BTreeMap<String, Zeroizing<Vec<u8>>>,
    bans: BTreeMap<u16, String>,
    staged: Option<StagedShare>,
}

#[derive(Default)]
struct Inner {
    keys: BTreeMap<(String, String), Entry>,
    iids: HashSet<[u8; 32]>,
    operations: BTreeMap<(String, String), OperationRecord>,
}

/// In-memory [`Store`] (tests): same semantics as [`crate::SqliteStore`], no encryption.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore(<redacted>)")
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// PENDING records last changed before `before` (unix seconds) → ERROR.
    fn fail_pending_before(&self, reason: &str, before: i64) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let mut n = 0;
        for e in inner.keys.values_mut() {
            if e.record.status == KeyStatus::Pending && e.record.updated_at < before {
                e.record.status = KeyStatus::Error(truncate_reason(reason));
                e.record.updated_at = now_secs();
                n += 1;
            }
        }
        Ok(n)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Database("store lock poisoned".into()))
    }
}

fn end_operation(op: &mut OperationRecord, end: &OperationEnd<'_>) {
    op.state = if end.succeeded { OperationState::Succeeded } else { OperationState::Failed };
    op.http_status = Some(end.http_status);
    op.result = Some(end.result.to_owned());
    op.updated_at = now_secs();
}

fn id(app: &str, key: &str) -> (String, String) {
    (app.to_owned(), key.to_owned())
}

impl Inner {
    fn entry(&mut self, app: &str, key: &str) -> Result<&mut Entry, StoreError> {
        self.keys.get_mut(&id(app, key)).ok_or(StoreError::NotFound)
    }
}

impl Store for MemoryStore {
    fn create_pending(
        &self,
        app: &str,
        key: &str,
        threshold: u16,
        parties: u16,
        player: u16,
    ) -> Result<CreateOutcome, StoreError> {
        check_app_key(app, key)?;
        check_params(threshold, parties)?;
        let mut inner = self.lock()?;
        if let Some(e) = inner.keys.get(&id(app, key)) {
            return Ok(CreateOutcome::Existing(e.record.clone()));
        }
        let now = now_secs();
        let record = KeyRecord {
            app: app.to_owned(),
            key: key.to_owned(),
            status: KeyStatus::Pending,
            threshold,
            parties,
            player,
            epoch: 0,
            public_key: None,
            chain_code: None,
            core_key_id: None,
            created_at: now,
            updated_at: now,
        };
        let entry = Entry {
            record,
            share: None,
            presigs: BTreeMap::new(),
            bans: BTreeMap::new(),
            staged: None,
        };
        inner.keys.insert(id(app, key), entry);
        Ok(CreateOutcome::Created)
    }

    fn mark_ready(&self, app: &str, key: &str, ready: &ReadyKey<'_>) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        check_can_mark_ready(&e.record.status)?;
        e.share = Some(Zeroizing::new(ready.share.to_vec()));
        let r = &mut e.record;
        r.status = KeyStatus::Ready;
        r.epoch = ready.epoch;
        r.public_key = Some(ready.public_key);
        r.chain_code = Some(ready.chain_code);
        r.core_key_id = Some(ready.core_key_id);
        r.updated_at = now_secs();
        Ok(())
    }

    fn mark_error(&self, app: &str, key: &str, reason: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        check_can_mark_error(&e.record.status)?;
        e.record.status = KeyStatus::Error(truncate_reason(reason));
        e.record.updated_at = now_secs();
        Ok(())
    }

    fn fail_pending(&self, reason: &str) -> Result<u64, StoreError> {
        self.fail_pending_before(reason, i64::MAX)
    }

    fn fail_stale_pending(&self, reason: &str, max_age_secs: u64) -> Result<u64, StoreError> {
        let age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
        self.fail_pending_before(reason, now_secs().saturating_sub(age))
    }

    fn get(&self, app: &str, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.lock()?.keys.get(&id(app, key)).map(|e| e.record.clone()))
    }

    fn list(&self, app: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .keys
            .iter()
            .filter(|((a, _), _)| a == app)
            .map(|(_, e)| e.record.clone())
            .collect())
    }

    fn load_share(&self, app: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        match (&e.record.status, &e.share) {
            (KeyStatus::Ready, Some(s)) => Ok(Zeroizing::new(s.to_vec())),
            _ => Err(StoreError::NotFound),
        }
    }

    fn replace_share(&self, app: &str, key: &str, new: &NewShare<'_>) -> Result<(), StoreError> {
        check_params(new.threshold, new.parties)?;
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        check_ready(&e.record.status)?;
        check_new_epoch(e.record.epoch, new.epoch)?;
        e.share = Some(Zeroizing::new(new.share.to_vec()));
        e.presigs.clear();
        e.bans.clear();
        e.staged = None;
        let r = &mut e.record;
        r.epoch = new.epoch;
        r.player = new.player;
        r.threshold = new.threshold;
        r.parties = new.parties;
        r.updated_at = now_secs();
        Ok(())
    }

    fn stage_share(
        &self,
        app: &str,
        key: &str,
        epoch: u32,
        setup: &[u8],
        share: &[u8],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        check_ready(&e.record.status)?;
        check_new_epoch(e.record.epoch, epoch)?;
        e.staged = Some(StagedShare {
            epoch,
            setup: setup.to_vec(),
            share: Zeroizing::new(share.to_vec()),
        });
        Ok(())
    }

    fn staged_share(&self, app: &str, key: &str) -> Result<Option<StagedShare>, StoreError> {
        Ok(self.lock()?.keys.get(&id(app, key)).and_then(|e| e.staged.clone()))
    }

    fn clear_staged(&self, app: &str, key: &str) -> Result<(), StoreError> {
        if let Some(e) = self.lock()?.keys.get_mut(&id(app, key)) {
            e.staged = None;
        }
        Ok(())
    }

    fn list_staged(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .lock()?
            .keys
            .iter()
            .filter(|(_, e)| e.staged.is_some())
            .map(|((a, k), _)| (a.clone(), k.clone()))
            .collect())
    }

    fn delete(&self, app: &str, key: &str) -> Result<(), StoreError> {
        self.lock()?.keys.remove(&id(app, key)).map(|_| ()).ok_or(StoreError::NotFound)
    }

    fn record_iid(&self, iid: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.lock()?.iids.insert(*iid))
    }

    fn record_ban(&self, app: &str, key: &str, party: u16, reason: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        e.bans.entry(party).or_insert_with(|| truncate_reason(reason));
        Ok(())
    }

    fn bans(&self, app: &str, key: &str) -> Result<Vec<u16>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .keys
            .get(&id(app, key))
            .map(|e| e.bans.keys().copied().collect())
            .unwrap_or_default())
    }

    fn put_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        check_presig_id(id)?;
        let mut inner = self.lock()?;
        let e = inner.entry(app, key)?;
        check_ready(&e.record.status)?;
        if e.presigs.contains_key(id) {
            return Err(StoreError::Conflict("presignature id already used".into()));
        }
        e.presigs.insert(id.to_owned(), Zeroizing::new(bytes.to_vec()));
        Ok(())
    }

    fn take_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner.keys.get_mut(&self::id(app, key)).and_then(|e| e.presigs.remove(id)))
    }

    fn peek_presignature(
        &self,
        app: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.keys.get(&self::id(app, key)).and_then(|e| e.presigs.get(id)).cloned())
    }

    fn list_presignatures(&self, app: &str, key: &str) -> Result<Vec<String>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .keys
            .get(&id(app, key))
            .map(|e| e.presigs.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect())
            .unwrap_or_default())
    }

    fn create_operation(&self, app: &str, id: &str, operation: &str) -> Result<bool, StoreError> {
        check_operation(app, id, operation)?;
        let mut inner = self.lock()?;
        let slot = (app.to_owned(), id.to_owned());
        if inner.operations.contains_key(&slot) {
            return Ok(false);
        }
        let now = now_secs();
        inner.operations.insert(
            slot,
            OperationRecord {
                id: id.to_owned(),
                operation: operation.to_owned(),
                state: OperationState::Running,
                http_status: None,
                result: None,
                created_at: now,
                updated_at: now,
            },
        );
        Ok(true)
    }

    fn finish_operation(
        &self,
        app: &str,
        id: &str,
        end: &OperationEnd<'_>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let op = inner
            .operations
            .get_mut(&(app.to_owned(), id.to_owned()))
            .ok_or(StoreError::NotFound)?;
        if op.state == OperationState::Running {
            end_operation(op, end);
        }
        Ok(())
    }

    fn get_operation(&self, app: &str, id: &str) -> Result<Option<OperationRecord>, StoreError> {
        Ok(self.lock()?.operations.get(&(app.to_owned(), id.to_owned())).cloned())
    }

    fn fail_running_operations(
        &self,
        end: &OperationEnd<'_>,
        max_age_secs: u64,
        keep_secs: u64,
    ) -> Result<u64, StoreError> {
        let (before, forget_before) = operation_cutoffs(max_age_secs, keep_secs);
        let mut inner = self.lock()?;
        let mut n = 0;
        for op in inner.operations.values_mut() {
            if op.state == OperationState::Running && op.updated_at < before {
                end_operation(op, end);
                n += 1;
            }
        }
        inner
            .operations
            .retain(|_, op| op.state == OperationState::Running || op.updated_at >= forget_before);
        Ok(n)
    }
}

impl dkls23_core::setup::ReplayGuard for MemoryStore {
    fn check_and_record(&self, iid: &[u8; 32]) -> Result<(), dkls23_core::setup::ReplayError> {
        guard_result(self.record_iid(iid))
    }
}
