//! Integration tests of dkls23-runner: protocols over an in-memory relay with seeded RNGs.
#![allow(
    clippy::unwrap_used,
    clippy::type_complexity,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;
mod import_export;
mod lifecycle_runner;
mod observer;
mod presign;
mod runner;
