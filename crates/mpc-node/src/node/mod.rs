//! The node: its state and the operations behind the SDK API (independent of HTTP).
//!
//! [`Node`] is the façade the router calls. Each operation lives in a module of its own and
//! takes a validated request (`crate::request`); what they share is split by job:
//!
//! * `state` — the node and its parts; `startup` — opening the store, connecting the relay;
//! * `runtime` — where sessions run, how many at once, what each run is given;
//! * `session` — slots, session ids and bans around every run; `bans` — ban signals;
//! * `keys` — key locks, the share cache, staged marks; `shares` — records and shares;
//! * operations: `keygen`, `sign`, `presign`, `reshare`, `transfer` (import and
//!   export), `staged` (settling staged shares), `lookup`, `delete`.

mod bans;
mod db;
mod delete;
mod keygen;
mod keys;
mod lookup;
mod presign;
mod records;
mod reshare;
mod runtime;
mod session;
mod shares;
mod sign;
mod staged;
mod startup;
mod state;
mod transfer;

pub use records::key_info;
pub use startup::open_store;
pub use state::Node;

pub use crate::request::MAX_PRESIGN_COUNT;
