//! mpc-node integration tests: real sockets, a real relay, three nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod api;
mod audit;
mod bans;
mod capacity;
mod common;
mod config;
mod dev;
mod disconnect;
mod flows;
mod lifecycle;
mod mobile;
mod operations;
mod persistence;
mod relay;
mod replicas;
mod staged;
mod tenants;
mod tls;
