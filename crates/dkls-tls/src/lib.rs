//! TLS for everything that crosses a network here: the relay's clients (parties, nodes, phones),
//! the relay and the node's SDK API as servers, and the node's HTTP client.
//!
//! - [`ClientTls`]: a rustls client configuration with the bundled web PKI roots, optional extra
//!   CA certificates (a private CA, `mpc-node dev --tls`), optional pins of the server's
//!   certificate or public key, and an optional client certificate (mTLS).
//! - [`ServerTls`]: a server configuration from PEM files that can be reloaded (on `SIGHUP` or
//!   when the files change, see [`ServerTls::watch`]) without dropping open connections, with
//!   optional client certificates verified against a CA. [`ServerTls::accept`] answers a client
//!   that speaks plain HTTP to the TLS port with a readable `400` instead of a reset.
//! - [`TlsError`]: every handshake failure classified ([`Failure`]): untrusted issuer, expired,
//!   wrong host name, pin mismatch, plaintext server, rejected client certificate…, each with
//!   the cause and what to change.
//! - [`Fingerprint`]: SHA-256 of a certificate (or of its public key), for pins and for mapping
//!   client certificates to applications.
//!
//! The crypto provider is rustls' `ring` provider, which builds for Android and iOS.

mod client;
mod error;
mod fingerprint;
#[cfg(feature = "generate")]
pub mod generate;
mod pem;
mod server;
mod stream;

pub use client::{ClientTls, ClientTlsBuilder, Pin};
pub use error::{Failure, TlsError};
pub use fingerprint::Fingerprint;
pub use server::{Accepted, ClientAuth, ServerTls, ServerTlsFiles, Watcher};
pub use stream::{ClientStream, ServerStream};

/// The crypto provider every configuration of this crate uses.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
