//! Asynchronous operations of the SDK API: their state and outcome.

use rusqlite::{Connection, OptionalExtension as _};

use super::sql::{corrupt, db};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::record::{OperationEnd, OperationRecord, OperationState};

fn state_of(end: &OperationEnd<'_>) -> &'static str {
    if end.succeeded { OperationState::Succeeded.as_str() } else { OperationState::Failed.as_str() }
}

/// Inserts a running operation; `false` if the id exists.
pub(super) fn create(
    tx: &Connection,
    app: &str,
    id: &str,
    operation: &str,
) -> Result<bool, StoreError> {
    let now = now_secs();
    let n = tx
        .execute(
            "INSERT INTO operations (app, id, operation, state, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 'running', ?4, ?4) ON CONFLICT (app, id) DO NOTHING",
            (app, id, operation, now),
        )
        .map_err(db)?;
    Ok(n == 1)
}

/// Ends a running operation (an ended one keeps its outcome).
pub(super) fn finish(
    tx: &Connection,
    app: &str,
    id: &str,
    end: &OperationEnd<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE operations SET state = ?3, http_status = ?4, result = ?5, updated_at = ?6 \
         WHERE app = ?1 AND id = ?2 AND state = 'running'",
        (app, id, state_of(end), end.http_status, end.result, now_secs()),
    )
    .map_err(db)?;
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM operations WHERE app = ?1 AND id = ?2", (app, id), |r| r.get(0))
        .optional()
        .map_err(db)?;
    if exists.is_some() { Ok(()) } else { Err(StoreError::NotFound) }
}

/// One operation.
pub(super) fn get(
    tx: &Connection,
    app: &str,
    id: &str,
) -> Result<Option<OperationRecord>, StoreError> {
    let row = tx
        .query_row(
            "SELECT operation, state, http_status, result, created_at, updated_at \
             FROM operations WHERE app = ?1 AND id = ?2",
            (app, id),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()
        .map_err(db)?;
    let Some((operation, state, http_status, result, created_at, updated_at)) = row else {
        return Ok(None);
    };
    Ok(Some(OperationRecord {
        id: id.to_owned(),
        operation,
        state: OperationState::parse(&state)?,
        http_status: http_status
            .map(|s| u16::try_from(s).map_err(|_| corrupt("operation status")))
            .transpose()?,
        result,
        created_at,
        updated_at,
    }))
}

/// Fails the running operations not changed since `before`; deletes ended ones older than
/// `forget_before`.
pub(super) fn fail_running(
    tx: &Connection,
    end: &OperationEnd<'_>,
    before: i64,
    forget_before: i64,
) -> Result<u64, StoreError> {
    let n = tx
        .execute(
            "UPDATE operations SET state = ?1, http_status = ?2, result = ?3, updated_at = ?4 \
             WHERE state = 'running' AND updated_at < ?5",
            (state_of(end), end.http_status, end.result, now_secs(), before),
        )
        .map_err(db)?;
    tx.execute(
        "DELETE FROM operations WHERE state <> 'running' AND updated_at < ?1",
        [forget_before],
    )
    .map_err(db)?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}
