//! Integration tests of mpc-node-store: the Store contract against both implementations, and the
//! SQLite store's encryption at rest, tamper detection, shredding and persistence on real files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_debug_implementations
)]

mod common;
mod contract;
mod postgres;
mod sqlite;
