//! The TLS parts of the configuration: `[tls]` (the SDK API's certificate and client CA),
//! `[[client_certs]]` (client certificates that act for an application) and `[relay_tls]` (how
//! `https://` relays are verified).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::resolve;

/// `[tls]`: the SDK API over TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain (reloaded on SIGHUP and when the file changes).
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `none`, `optional` (default with a client CA: clients without a certificate use API
    /// keys) or `required`.
    #[serde(default)]
    pub client_auth: Option<String>,
}

/// `[[client_certs]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertEntry {
    /// The application this certificate acts for.
    pub app: String,
    /// SHA-256 of the client certificate (DER), hex, colons allowed.
    pub sha256: String,
}

/// `[relay_tls]`: trust for `https://` / `wss://` relay URLs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayTlsSection {
    /// Extra PEM CA certificates (e.g. a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the bundled web PKI roots are trusted too (default true).
    #[serde(default = "yes")]
    pub public_roots: bool,
    /// Pins of the relay's certificate: `cert-sha256:<hex>` or `spki-sha256:<hex>`.
    #[serde(default)]
    pub pins: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `[tls]`: the certificate, key and client CA, loaded now so that a bad file stops startup.
pub(super) fn server_tls(
    section: Option<&TlsSection>,
    base: &Path,
    errs: &mut Vec<String>,
) -> Option<dkls_tls::ServerTls> {
    let section = section?;
    let client_auth = match section.client_auth.as_deref() {
        Some(text) => match text.parse::<dkls_tls::ClientAuth>() {
            Ok(auth) => auth,
            Err(e) => {
                errs.push(format!("tls.client_auth: {e}"));
                return None;
            }
        },
        None if section.client_ca_file.is_some() => dkls_tls::ClientAuth::Optional,
        None => dkls_tls::ClientAuth::None,
    };
    let files = dkls_tls::ServerTlsFiles {
        cert: resolve(base, &section.cert_file),
        key: resolve(base, &section.key_file),
        client_ca: section.client_ca_file.as_deref().map(|p| resolve(base, p)),
        client_auth,
    };
    match dkls_tls::ServerTls::load(files) {
        Ok(tls) => Some(tls),
        Err(e) => {
            errs.push(format!("tls: {e}"));
            None
        }
    }
}

/// `[[client_certs]]`: only meaningful when the API asks for client certificates.
pub(super) fn client_certs(
    entries: &[ClientCertEntry],
    tls: Option<&dkls_tls::ServerTls>,
    errs: &mut Vec<String>,
) -> Vec<(dkls_tls::Fingerprint, String)> {
    if !entries.is_empty()
        && tls.is_none_or(|t| t.files().client_auth == dkls_tls::ClientAuth::None)
    {
        errs.push(
            "client_certs need [tls] with client_ca_file (clients are not asked for certificates)"
                .into(),
        );
    }
    let mut out = Vec::new();
    for (k, c) in entries.iter().enumerate() {
        if !mpc_node_store::is_valid_app(&c.app) {
            errs.push(format!("client_certs[{k}].app {:?} is not a valid application id", c.app));
        }
        match c.sha256.parse::<dkls_tls::Fingerprint>() {
            Ok(f) if out.iter().any(|(seen, _)| *seen == f) => {
                errs.push(format!("client_certs[{k}]: the same certificate appears twice"));
            }
            Ok(f) => out.push((f, c.app.clone())),
            Err(e) => errs.push(format!("client_certs[{k}].sha256: {e}")),
        }
    }
    out
}

/// `[relay_tls]`: what this node trusts for `https://` relay URLs.
pub(super) fn relay_tls(
    section: Option<&RelayTlsSection>,
    base: &Path,
    errs: &mut Vec<String>,
) -> Option<dkls_tls::ClientTls> {
    let section = section?;
    let mut builder = dkls_tls::ClientTls::builder().public_roots(section.public_roots);
    if let Some(ca) = &section.ca_file {
        builder = match builder.ca_file(resolve(base, ca)) {
            Ok(b) => b,
            Err(e) => {
                errs.push(format!("relay_tls.ca_file: {e}"));
                return None;
            }
        };
    }
    for (k, pin) in section.pins.iter().enumerate() {
        match pin.parse::<dkls_tls::Pin>() {
            Ok(pin) => builder = builder.pin(pin),
            Err(e) => errs.push(format!("relay_tls.pins[{k}]: {e}")),
        }
    }
    match builder.build() {
        Ok(tls) => Some(tls),
        Err(e) => {
            errs.push(format!("relay_tls: {e}"));
            None
        }
    }
}
