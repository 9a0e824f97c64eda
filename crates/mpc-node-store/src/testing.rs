//! Test support (feature `testing`): a fresh PostgreSQL database per test on the throw-away
//! server that `.ci/services` starts.
#![allow(clippy::panic)]

/// The server's URL (`MPC_TEST_POSTGRES_URL`). Without it: a panic when
/// `MPC_REQUIRE_SERVICES` is set (CI, where the server must be there), otherwise `None` and a
/// line saying how to get one (the caller skips its PostgreSQL part).
///
/// # Panics
/// In CI without a server.
pub fn postgres_server() -> Option<String> {
    if let Ok(url) = std::env::var("MPC_TEST_POSTGRES_URL") {
        return Some(url);
    }
    if std::env::var_os("MPC_REQUIRE_SERVICES").is_some() {
        panic!(
            "MPC_TEST_POSTGRES_URL is not set but MPC_REQUIRE_SERVICES is: PostgreSQL did not start"
        );
    }
    eprintln!(
        "skipping the PostgreSQL part: MPC_TEST_POSTGRES_URL is not set \
         (run `source .ci/services` first to start a throw-away server)"
    );
    None
}

/// The file of the CA that signed the test server's certificate (`MPC_TEST_POSTGRES_CA`).
pub fn postgres_ca() -> Option<std::path::PathBuf> {
    std::env::var_os("MPC_TEST_POSTGRES_CA").map(std::path::PathBuf::from)
}

/// A new, empty database on the test server; returns its URL (`None`: no server, see
/// [`postgres_server`]).
///
/// # Panics
/// When the server does not accept the `CREATE DATABASE`.
pub fn postgres_database() -> Option<String> {
    let server = postgres_server()?;
    let mut name = [0u8; 8];
    if getrandom::fill(&mut name).is_err() {
        panic!("no randomness for a database name");
    }
    let name = format!("mpc_test_{}", name.iter().map(|b| format!("{b:02x}")).collect::<String>());
    // On a thread of its own: the driver blocks on its own runtime, which an async test's
    // thread does not allow.
    let created = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut admin =
                    postgres::Client::connect(&server, postgres::NoTls).map_err(|e| {
                        format!("the test server at MPC_TEST_POSTGRES_URL refuses: {e}")
                    })?;
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .map_err(|e| format!("CREATE DATABASE failed: {e}"))
            })
            .join()
    });
    match created {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("creating the test database panicked"),
    }
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server.as_str(), String::new()),
    };
    let Some((prefix, _)) = base.rsplit_once('/') else {
        panic!("MPC_TEST_POSTGRES_URL has no database name");
    };
    Some(format!("{prefix}/{name}{query}"))
}
