//! `uniffi-bindgen generate --library <libdkls_mobile.so> --language python|kotlin|swift
//! --out-dir <dir>`: the foreign-language sources of this library (see `docs/mobile.md`). Built
//! with the `bindgen` feature.

fn main() {
    uniffi::uniffi_bindgen_main()
}
