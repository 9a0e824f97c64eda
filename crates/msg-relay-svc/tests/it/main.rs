//! Integration tests of the relay service (one test binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod connections;
mod engine;
mod exchange;
mod peers;
mod replicas;
mod restart;
mod router;
mod store_contract;
mod tls;
mod ws_raw;
