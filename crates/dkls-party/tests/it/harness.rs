//! Spawning the relay and party processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_dkls-party");
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A temporary directory removed on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dkls-party-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `dkls-party relay --listen 127.0.0.1:0`, killed on drop.
pub struct RelayProcess {
    child: Child,
    pub url: String,
    /// The CA parties must trust (`RELAY_CA_FILE`) for a TLS relay.
    pub ca_file: Option<PathBuf>,
}

impl RelayProcess {
    pub fn start() -> Self {
        Self::spawn(&[], None)
    }

    /// A relay serving TLS with `cert`/`key`, issued by the CA in `ca_file`.
    pub fn start_tls(cert: &Path, key: &Path, ca_file: &Path) -> Self {
        let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
        Self::spawn(&args, Some(ca_file.to_owned()))
    }

    /// A relay keeping its messages in Redis under `prefix` (replicas share the prefix).
    pub fn start_redis(url: &str, prefix: &str) -> Self {
        Self::spawn_env(&["--redis-prefix", prefix], None, &[("RELAY_REDIS_URL", url)])
    }

    /// Kills the process at once (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(extra: &[&str], ca_file: Option<PathBuf>) -> Self {
        Self::spawn_env(extra, ca_file, &[])
    }

    fn spawn_env(extra: &[&str], ca_file: Option<PathBuf>, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["relay", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("relay listening on ").unwrap().to_owned();
        Self { child, url, ca_file }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one process.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One party: its own data directory, passphrase and relay URL.
pub struct Party {
    pub dest: PathBuf,
    relay_url: String,
    relay_ca_file: Option<PathBuf>,
}

impl Party {
    pub fn new(dir: &TestDir, name: &str, relay: &RelayProcess) -> Self {
        Self {
            dest: dir.path().join(name),
            relay_url: relay.url.clone(),
            relay_ca_file: relay.ca_file.clone(),
        }
    }

    /// A copy of this party's directory under another name.
    pub fn copy_to(&self, dir: &TestDir, name: &str) -> Self {
        let dest = dir.path().join(name);
        copy_dir(&self.dest, &dest);
        Self { dest, relay_url: self.relay_url.clone(), relay_ca_file: self.relay_ca_file.clone() }
    }

    /// The same party with another `RELAY_URL` (e.g. a list of replicas).
    pub fn with_relay_url(&self, relay_url: &str) -> Self {
        Self {
            dest: self.dest.clone(),
            relay_url: relay_url.to_owned(),
            relay_ca_file: self.relay_ca_file.clone(),
        }
    }

    /// The same party, without `RELAY_CA_FILE`.
    pub fn without_relay_ca(&self) -> Self {
        Self { dest: self.dest.clone(), relay_url: self.relay_url.clone(), relay_ca_file: None }
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("PARTY_ID")
            .env_remove("DKLS_IDENTITY")
            .env("DEST", &self.dest)
            .env("DKLS_STATE_DIR", self.state_dir())
            .env("RELAY_URL", &self.relay_url)
            .env("DKLS_PASSPHRASE", PASSPHRASE)
            .env("DKLS_TIMEOUT_SECS", "60")
            .env("RUST_LOG", "off")
            .env_remove("RELAY_CA_FILE")
            .env_remove("RELAY_PINS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.relay_ca_file {
            c.env("RELAY_CA_FILE", ca);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Where this party's presignature generation counter lives (outside its directory).
    pub fn state_dir(&self) -> PathBuf {
        let mut name = self.dest.file_name().unwrap_or_default().to_os_string();
        name.push(".state");
        self.dest.with_file_name(name)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        collect(self.command(args, env).spawn().unwrap())
    }
}

pub fn collect(child: Child) -> Out {
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs the same command in every party at once and waits for all.
pub fn run_all(parties: &[Party], args: &[&str]) -> Vec<Out> {
    let refs: Vec<&Party> = parties.iter().collect();
    run_all_refs(&refs, args)
}

pub fn run_all_refs(parties: &[&Party], args: &[&str]) -> Vec<Out> {
    let children: Vec<Child> =
        parties.iter().map(|p| p.command(args, &[]).spawn().unwrap()).collect();
    children.into_iter().map(collect).collect()
}

/// Every file under the party's `shares/` directory with its bytes, sorted.
pub fn read_shares(p: &Party) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(p.dest.join("shares"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "share"))
        .collect();
    out.sort();
    out
}

/// stderr holds exactly one error line, containing `needle` and a hint after " — ".
pub fn assert_one_line_error(stderr: &str, needle: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert!(errors[0].contains(needle), "{:?} does not contain {needle:?}", errors[0]);
    assert!(errors[0].contains(" — "), "no hint in {:?}", errors[0]);
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
