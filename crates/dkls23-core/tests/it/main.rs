//! Integration tests of dkls23-core: protocols driven in plain loops with seeded RNGs.
#![allow(
    clippy::unwrap_used,
    clippy::type_complexity,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod bip32;
mod common;
mod dkg;
mod dkg_negative;
mod golden;
mod props;
mod reshare;
mod sign;
mod sign_negative;
