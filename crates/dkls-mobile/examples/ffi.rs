//! The library as a C-ABI shared object for the binding tests: `cargo test` builds examples
//! (but not a library's cdylib), so the Python tests load this one. Apps build the library
//! itself (`cargo build -p dkls-mobile --release`, `docs/mobile.md`).

pub use dkls_mobile::*;
