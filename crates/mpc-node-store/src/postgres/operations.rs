//! Asynchronous operations of the SDK API on PostgreSQL (the table every replica shares, so
//! any replica answers for an operation another one runs).

use postgres::{GenericClient, Transaction};

use super::conn::db;
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::record::{OperationEnd, OperationRecord, OperationState, corrupt};

fn state_of(end: &OperationEnd<'_>) -> &'static str {
    if end.succeeded { OperationState::Succeeded.as_str() } else { OperationState::Failed.as_str() }
}

pub(super) fn create(
    tx: &mut Transaction<'_>,
    app: &str,
    id: &str,
    operation: &str,
) -> Result<bool, StoreError> {
    let now = now_secs();
    let n = tx
        .execute(
            "INSERT INTO mpc_operations (app, id, operation, state, created_at, updated_at) \
             VALUES ($1, $2, $3, 'running', $4, $4) ON CONFLICT (app, id) DO NOTHING",
            &[&app, &id, &operation, &now],
        )
        .map_err(db)?;
    Ok(n == 1)
}

pub(super) fn finish(
    tx: &mut Transaction<'_>,
    app: &str,
    id: &str,
    end: &OperationEnd<'_>,
) -> Result<(), StoreError> {
    let status = i32::from(end.http_status);
    tx.execute(
        "UPDATE mpc_operations SET state = $3, http_status = $4, result = $5, updated_at = $6 \
         WHERE app = $1 AND id = $2 AND state = 'running'",
        &[&app, &id, &state_of(end), &status, &end.result, &now_secs()],
    )
    .map_err(db)?;
    let found = tx
        .query_opt("SELECT 1 FROM mpc_operations WHERE app = $1 AND id = $2", &[&app, &id])
        .map_err(db)?;
    if found.is_some() { Ok(()) } else { Err(StoreError::NotFound) }
}

pub(super) fn get(
    c: &mut impl GenericClient,
    app: &str,
    id: &str,
) -> Result<Option<OperationRecord>, StoreError> {
    let Some(row) = c
        .query_opt(
            "SELECT operation, state, http_status, result, created_at, updated_at \
             FROM mpc_operations WHERE app = $1 AND id = $2",
            &[&app, &id],
        )
        .map_err(db)?
    else {
        return Ok(None);
    };
    let bad = |_| corrupt("operation");
    let state: String = row.try_get(1).map_err(bad)?;
    let http_status: Option<i32> = row.try_get(2).map_err(bad)?;
    Ok(Some(OperationRecord {
        id: id.to_owned(),
        operation: row.try_get(0).map_err(bad)?,
        state: OperationState::parse(&state)?,
        http_status: http_status
            .map(|s| u16::try_from(s).map_err(|_| corrupt("operation status")))
            .transpose()?,
        result: row.try_get(3).map_err(bad)?,
        created_at: row.try_get(4).map_err(bad)?,
        updated_at: row.try_get(5).map_err(bad)?,
    }))
}

pub(super) fn fail_running(
    tx: &mut Transaction<'_>,
    end: &OperationEnd<'_>,
    before: i64,
    forget_before: i64,
) -> Result<u64, StoreError> {
    let status = i32::from(end.http_status);
    let n = tx
        .execute(
            "UPDATE mpc_operations SET state = $1, http_status = $2, result = $3, \
             updated_at = $4 WHERE state = 'running' AND updated_at < $5",
            &[&state_of(end), &status, &end.result, &now_secs(), &before],
        )
        .map_err(db)?;
    tx.execute(
        "DELETE FROM mpc_operations WHERE state <> 'running' AND updated_at < $1",
        &[&forget_before],
    )
    .map_err(db)?;
    Ok(n)
}
