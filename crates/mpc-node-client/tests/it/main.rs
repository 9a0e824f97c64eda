//! The embedded party against a server party run by the test (through the real runner and an
//! in-memory relay): bans are recorded, persisted in the app's ban store and enforced before
//! anything is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod bans;
