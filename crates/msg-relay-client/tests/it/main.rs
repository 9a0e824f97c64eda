//! Integration tests of the client against a scripted fake relay on 127.0.0.1 (the real relay
//! is exercised end to end in `msg-relay-svc`'s tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod fake;
mod reconnect;
