//! Relay URLs: `http(s)://host:port[/prefix]` or `ws(s)://host:port[/path]`.

use http::Uri;

use crate::error::ClientError;

/// The path of the WebSocket route under the relay's base URL.
pub const WS_PATH: &str = "/v1/msg-relay";

/// A parsed relay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrl {
    host: String,
    port: u16,
    /// Base path for HTTP calls, without a trailing `/` (usually empty).
    base: String,
    /// Full WebSocket URL.
    ws: String,
    /// `https://` or `wss://`.
    tls: bool,
}

impl RelayUrl {
    /// Parses a relay URL.
    ///
    /// `http://host:port` (any path is a prefix) maps to `ws://host:port/<prefix>/v1/msg-relay`;
    /// a `ws://` URL is used as given (an empty path becomes `/v1/msg-relay`) and its HTTP base
    /// is `http://host:port`. `https://` and `wss://` are the same over TLS. The port defaults
    /// to 80, or 443 with TLS.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] for an unparsable URL or an unknown scheme.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::InvalidUrl { url: url.to_owned(), reason };
        let uri: Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("missing scheme (use http://, https://, ws:// or wss://)"))?;
        let host = uri.host().ok_or_else(|| bad("missing host"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let (tls, websocket) = match scheme {
            "http" => (false, false),
            "https" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            _ => return Err(bad("unknown scheme (use http://, https://, ws:// or wss://)")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/');
        let authority_host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let hostport = format!("{authority_host}:{port}");
        let ws_scheme = if tls { "wss" } else { "ws" };
        let (base, ws) = if websocket {
            let ws_path = if path.is_empty() { WS_PATH } else { path };
            (String::new(), format!("{ws_scheme}://{hostport}{ws_path}"))
        } else {
            (path.to_owned(), format!("{ws_scheme}://{hostport}{path}{WS_PATH}"))
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(Self { host, port, base, ws, tls })
    }

    /// Whether the relay is reached over TLS (`https://` or `wss://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The WebSocket URL, e.g. `ws://127.0.0.1:8080/v1/msg-relay` or
    /// `wss://relay.example.org:443/v1/msg-relay`.
    pub fn ws_url(&self) -> &str {
        &self.ws
    }

    /// Value for an HTTP `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Path (and query) of an HTTP call under this relay's base, e.g. `/v1/msg/<hex>`.
    pub fn http_path(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn http_maps_to_the_ws_route() {
        let u = RelayUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.ws_url(), "ws://127.0.0.1:8080/v1/msg-relay");
        assert_eq!(u.http_path("/v1/msg/ab"), "/v1/msg/ab");
        assert_eq!(u.authority(), "127.0.0.1:8080");
        let u = RelayUrl::parse("http://relay.local/prefix/").unwrap();
        assert_eq!(u.ws_url(), "ws://relay.local:80/prefix/v1/msg-relay");
        assert_eq!(u.http_path("/healthz"), "/prefix/healthz");
    }

    #[test]
    fn ws_urls_are_kept() {
        let u = RelayUrl::parse("ws://127.0.0.1:9/custom").unwrap();
        assert_eq!(u.ws_url(), "ws://127.0.0.1:9/custom");
        let u = RelayUrl::parse("ws://[::1]:9").unwrap();
        assert_eq!(u.ws_url(), "ws://[::1]:9/v1/msg-relay");
        assert_eq!(u.host(), "::1");
        assert_eq!(u.authority(), "[::1]:9");
    }

    #[test]
    fn tls_urls_map_like_their_plain_forms() {
        let u = RelayUrl::parse("https://relay.example.org").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.port(), 443);
        assert_eq!(u.ws_url(), "wss://relay.example.org:443/v1/msg-relay");
        let u = RelayUrl::parse("wss://127.0.0.1:8443/custom").unwrap();
        assert!(u.is_tls());
        assert_eq!(u.ws_url(), "wss://127.0.0.1:8443/custom");
        assert!(!RelayUrl::parse("http://x").unwrap().is_tls());
    }

    #[test]
    fn bad_urls_are_rejected() {
        for bad in ["", "127.0.0.1:8080", "ftp://x", "http://", "https://"] {
            assert!(RelayUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
