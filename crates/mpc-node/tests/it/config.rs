//! Startup validation: every problem reported, one line each.

use std::path::Path;

use mpc_node::config;

use crate::common::*;

fn parse(text: &str) -> Result<config::Config, config::ConfigError> {
    config::parse(text, Path::new("."), &|_| None)
}

#[test]
fn a_valid_configuration_parses() {
    let c = parse(&NodeSpec::new(2, 3).toml("http://127.0.0.1:9")).unwrap();
    assert_eq!(c.index, 2);
    assert_eq!(c.players.len(), 3);
    assert_eq!(c.api_keys.len(), 2);
    assert_eq!(c.limits.session_timeout_secs, 20);
}

#[test]
fn every_problem_is_one_line() {
    let text = format!(
        "relay_urls = []\nlisten = \"nowhere\"\ndatabase_url = \"mysql://u:secret@x\"\n\
         [node]\nindex = 1\nidentity_key = \"ed25519:zz\"\n\
         [[players]]\nindex = 2\npublic_key = \"{p2}\"\n\
         [[players]]\nindex = 2\npublic_key = \"{p3}\"\n\
         [[players]]\nindex = 3\npublic_key = \"ed25519:1234\"\n\
         [[api_keys]]\napp = \"a\"\nsha256 = \"nothex\"\n",
        p2 = public(2),
        p3 = public(3)
    );
    let e = parse(&text).unwrap_err();
    let all = e.to_string();
    for needle in [
        "node.identity_key is malformed",
        "duplicate player index 2",
        "players[2].public_key is malformed",
        "relay_urls is empty",
        "listen \"nowhere\"",
        "database_url \"mysql\" is not supported",
        "api_keys[0].sha256",
        "master password is missing",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!all.contains("secret"), "{all}");
    assert_eq!(all.lines().count(), e.0.len());
    assert!(all.lines().all(|l| l.starts_with("config error: ")));
}

#[test]
fn own_key_mismatch_and_environment_overrides() {
    let mut text = NodeSpec::new(1, 3).toml("http://127.0.0.1:9");
    // The file says player 1 has player 2's key: mismatch with the identity.
    text = text.replacen(&public(1).to_string(), &public(9).to_string(), 1);
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("does not match node.identity_key"), "{e}");

    // The environment's identity key wins over the file's.
    let text = NodeSpec::new(1, 3).toml("http://127.0.0.1:9");
    let env = |name: &str| match name {
        "MPC_NODE_IDENTITY_KEY" => Some(format!("ed25519:{}", hex::encode(seed(7)))),
        "MPC_NODE_LISTEN" => Some("127.0.0.1:4567".to_owned()),
        _ => None,
    };
    let e = config::parse(&text, Path::new("."), &env).unwrap_err();
    assert!(e.to_string().contains("does not match node.identity_key"), "{e}");
    let text = text.replace(&public(1).to_string(), &public(7).to_string());
    let c = config::parse(&text, Path::new("."), &env).unwrap();
    assert_eq!(c.listen.port(), 4567);
    let unknown = parse(&format!("{text}\nsurprise = 1\n")).unwrap_err();
    assert!(unknown.to_string().contains("surprise"), "{unknown}");
}

#[test]
fn a_postgres_database_url_with_its_options() {
    let text = NodeSpec::new(1, 3).toml("http://127.0.0.1:9").replacen(
        "database_url = \"memory:\"",
        "database_url = \"postgres://mpc:s3cret@db.internal:5433/node1?sslmode=require\"\n\
         database_ca_file = \"certs/db-ca.pem\"\ndatabase_pool_size = 24",
        1,
    );
    let cfg = config::parse(&text, std::path::Path::new("/etc/mpc"), &|_| None).unwrap();
    let config::Database::Postgres(pg) = &cfg.database else { panic!("{:?}", cfg.database) };
    assert_eq!(pg.url.as_str(), "postgres://mpc:s3cret@db.internal:5433/node1?sslmode=require");
    assert_eq!(pg.ca_file.as_deref(), Some(std::path::Path::new("/etc/mpc/certs/db-ca.pem")));
    assert_eq!(pg.pool_size, 24);
    // The login password never shows in debug output.
    assert!(!format!("{pg:?}").contains("s3cret"));

    let bad = text.replacen("?sslmode=require", "?sslmode=sometimes", 1).replacen("= 24", "= 0", 1);
    let e = config::parse(&bad, std::path::Path::new("."), &|_| None).unwrap_err().to_string();
    assert!(e.contains("database_url is not a valid PostgreSQL URL"), "{e}");
    assert!(e.contains("database_pool_size 0 is not in 1..=1000"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn app_limits_and_the_audit_log_location() {
    let spec = NodeSpec {
        tables: "\n[[app_limits]]\napp = \"app-a\"\nrequests_per_second = 5\n\
                 max_concurrent_operations = 2\n"
            .into(),
        database_url: "sqlite:///var/lib/n/node1.sqlite".into(),
        ..NodeSpec::new(1, 3)
    };
    let c = parse(&spec.toml("http://127.0.0.1:9")).unwrap();
    assert_eq!(c.app_limits.len(), 1);
    assert_eq!(c.app_limits[0].max_concurrent_operations, Some(2));
    assert_eq!(c.audit_log.as_deref(), Some(Path::new("/var/lib/n/node1.audit.jsonl")));
    let off = NodeSpec { extra: "audit_log = \"\"\n".into(), ..spec.clone() };
    assert_eq!(parse(&off.toml("http://127.0.0.1:9")).unwrap().audit_log, None);
    assert_eq!(parse(&NodeSpec::new(1, 3).toml("http://127.0.0.1:9")).unwrap().audit_log, None);

    let bad = NodeSpec {
        tables: "\n[[app_limits]]\napp = \"nobody\"\nrequests_per_second = -1\n\
                 \n[[app_limits]]\napp = \"app-a\"\nburst = 0\nmax_concurrent_operations = 0\n\
                 \n[[app_limits]]\napp = \"app-a\"\n"
            .into(),
        ..NodeSpec::new(1, 3)
    };
    let all = parse(&bad.toml("http://127.0.0.1:9")).unwrap_err().to_string();
    for needle in [
        "application \"nobody\" has no API key",
        "\"nobody\": requests_per_second must be in (0, 1e6]",
        "\"app-a\": burst must be at least 1",
        "\"app-a\": burst needs requests_per_second",
        "\"app-a\": max_concurrent_operations must be at least 1",
        "application \"app-a\" is listed twice",
    ] {
        assert!(all.contains(needle), "{needle:?} missing in: {all}");
    }
}

#[test]
fn webhooks_are_checked() {
    let good = NodeSpec {
        tables:
            "\n[[webhooks]]\napp = \"app-a\"\nurl = \"https://hooks.example.com:8443/mpc?x=1\"\n\
                 secret = \"0123456789abcdef0123456789abcdef\"\n"
                .into(),
        ..NodeSpec::new(1, 3)
    };
    let c = parse(&good.toml("http://127.0.0.1:9")).unwrap();
    assert_eq!(c.webhooks.len(), 1);
    assert_eq!(c.webhooks[0].base_url, "https://hooks.example.com:8443");
    assert_eq!(c.webhooks[0].path, "/mpc?x=1");
    assert!(!format!("{:?}", c.webhooks[0]).contains("0123456789abcdef"), "secret in Debug");

    let bad = NodeSpec {
        tables: "\n[[webhooks]]\napp = \"nobody\"\nurl = \"ftp://x/y\"\nsecret = \"short\"\n\
                 \n[[webhooks]]\napp = \"app-a\"\nurl = \"http://h:1/p\"\n\
                 \n[[webhooks]]\napp = \"app-a\"\nurl = \"http://h:1/p\"\n\
                 secret = \"0123456789abcdef0123456789abcdef\"\n"
            .into(),
        ..NodeSpec::new(1, 3)
    };
    let all = parse(&bad.toml("http://127.0.0.1:9")).unwrap_err().to_string();
    for needle in [
        "webhooks: application \"nobody\" has no API key",
        "webhooks \"nobody\": url must be http://host:port/path",
        "webhooks \"nobody\": the secret must have at least 32 characters",
        "webhooks \"app-a\": set one of secret and secret_file",
        "webhooks: application \"app-a\" is listed twice",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}
