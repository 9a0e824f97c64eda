//! The key-encryption key: derived from the master password with Argon2id (salt and
//! parameters kept in `meta`) and checked against a sealed check value, so a wrong password
//! fails instead of producing garbage.

use rusqlite::{Connection, TransactionBehavior};

use super::sql::{db, meta};
use crate::envelope::{KdfParams, SALT_LEN, SecretKey, fill_random};
use crate::error::StoreError;
pub(super) use crate::kek::{seal_check, verify_kek};

type KdfRows = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

fn read_kdf(conn: &Connection) -> Result<KdfRows, StoreError> {
    Ok((meta(conn, "kdf_salt")?, meta(conn, "kdf_params")?, meta(conn, "kdf_check")?))
}

/// Reads (or, for a new database, creates) the KDF salt, parameters and check value, derives the
/// KEK and verifies it. An existing database is only read.
pub(super) fn unlock(
    conn: &mut Connection,
    password: &[u8],
    create_params: KdfParams,
) -> Result<SecretKey, StoreError> {
    match read_kdf(conn)? {
        (Some(salt), Some(params), Some(check)) => {
            return verify_kek(password, &salt, &params, &check);
        }
        (None, None, None) => {}
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let kek = match read_kdf(&tx)? {
        // Another process created them meanwhile.
        (Some(salt), Some(params), Some(check)) => verify_kek(password, &salt, &params, &check)?,
        (None, None, None) => {
            let mut salt = [0u8; SALT_LEN];
            fill_random(&mut salt)?;
            let kek = SecretKey::derive_kek(password, &salt, create_params)?;
            let check = seal_check(&kek, &salt, create_params)?;
            let put = "INSERT INTO meta (name, value) VALUES (?1, ?2)";
            tx.execute(put, ("kdf_salt", salt.as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_params", create_params.encode().as_slice())).map_err(db)?;
            tx.execute(put, ("kdf_check", check)).map_err(db)?;
            kek
        }
        _ => return Err(StoreError::Corrupt("key derivation settings incomplete".into())),
    };
    tx.commit().map_err(db)?;
    Ok(kek)
}
