//! `dkls-party` binary: a thin shell over the library (see `docs/dkls-party.md`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(dkls_party::run_main(std::env::args_os()) as u8)
}
