//! Key import (split an existing private key, `protocols.md` §6.1) and key export (reconstruct
//! it to one recipient, §6.2), as sans-IO rounds: [`start_import`] (rounds 1–2, then the
//! refresh of [`crate::reshare`]), [`start_export`] and [`start_export_receive`].
//!
//! **Import** is trusted-dealer: the key is only as safe as the dealer's history. The dealt
//! shares are provisional (no OT material); the import runner immediately runs a refresh-mode
//! reshare, so the final shares and all OT / zero seeds are fresh and unknown to the dealer.
//!
//! **Export ends threshold custody.** After an export the key must be treated as single-custody
//! forever; a refresh does not undo it. Every API here requires the caller to pass
//! [`EXPORT_CONFIRMATION`] verbatim.

use crate::error::Error;

mod export;
mod import;

pub use export::{
    EXPORT_CONFIRMATION, EXPORT_PAYLOAD_LEN, ExportReceiveRound, ExportRequest, ExportSentRound,
    ExportedKey, export_share, open_export_share, receive_export, start_export,
    start_export_receive,
};
pub use import::{
    ImportDeal, ImportRequest, ImportRound1, ImportRound2, ImportSecret, ProvisionalShare,
    start_import,
};

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}
