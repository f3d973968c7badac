//! The web configuration file (`--web.config.file`): TLS and HTTP basic auth for every
//! endpoint, in the YAML shape of the Prometheus exporter-toolkit's web config, so one file
//! can serve this exporter and the others on a host:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # or `cert:` with the PEM inline
//!   key_file: server.key             # or `key:` with the PEM inline
//!   client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default),
//!                                    # VerifyClientCertIfGiven, RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # or `client_ca:` inline
//!   min_version: TLS12               # TLS12 (default) or TLS13
//!   max_version: TLS13               # TLS12 or TLS13 (default)
//!   cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]   # TLS 1.2 only, as in Go
//!   curve_preferences: [X25519, CurveP256]
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   http2: true                      # accepted; this server speaks HTTP/1.1 only
//!   headers: { X-Frame-Options: deny }
//! rate_limit: { burst: 10, interval: 1s }
//! basic_auth_users:
//!   prometheus: $2y$10$...           # bcrypt hash ($2a$, $2b$ or $2y$)
//! ```
//!
//! Relative file names are taken from the directory of the web config file, as the
//! exporter-toolkit does. Unknown keys are refused, and so are the toolkit's keys this
//! server cannot honour (TLS 1.0/1.1, client certificates that are not verified against a
//! CA, `client_allowed_sans`): a setting that would silently not apply is a bad setting.
//! The file is read once, at start; changing it (or the certificates) takes a restart.

mod basic_auth;
mod file;
mod headers;
mod rate_limit;
mod tls;

use std::path::Path;
use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;

pub use basic_auth::BasicAuth;
pub use rate_limit::RateLimiter;

use crate::error::{Error, Result};

/// What the file asks for, checked and ready to use.
pub struct WebConfig {
    /// Serve HTTPS with this; plain HTTP when `None`.
    pub tls: Option<Arc<ServerConfig>>,
    /// Whether TLS asks for (and verifies) client certificates.
    pub client_auth: ClientAuth,
    /// Require one of these users on every request; anyone when `None`.
    pub auth: Option<BasicAuth>,
    /// Extra headers on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Refuse requests beyond this rate (429), before authentication.
    pub rate_limit: Option<RateLimiter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    VerifyIfGiven,
    RequireAndVerify,
}

/// A bad key of the file, dotted (`tls_server_config.cert_file`); empty when the file as a
/// whole is unreadable or not YAML of the right shape, the reason then naming the key. No
/// reason holds a password or a private key.
fn bad(key: &str, reason: impl Into<String>) -> Error {
    // Keys come from the file (header and user names): a newline in one must not make the
    // error two lines.
    if key.chars().any(char::is_control) {
        return Error::new(key.escape_debug().to_string(), reason);
    }
    Error::new(key, reason)
}

/// The setting naming this file, said before its keys.
const SETTING: &str = "web.config.file";

impl WebConfig {
    /// Reads and checks the file; relative file names in it are taken from its directory.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let with_path = |e: Error| e.in_file(SETTING, path);
        let text = std::fs::read_to_string(path).map_err(|e| with_path(bad("", e.to_string())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).map_err(with_path)
    }

    fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
        let raw = file::read(text)?;
        let (tls, client_auth) = match raw.tls_server_config {
            Some(t) => tls::config(t, dir)?,
            None => (None, ClientAuth::None),
        };
        let headers = match raw.http_server_config {
            Some(h) => {
                // HTTP/2 on or off: either way this server answers HTTP/1.1, which every
                // Prometheus speaks, so the key is accepted for files shared with Go exporters.
                let _ = h.http2;
                headers::extra(h.headers.unwrap_or_default())?
            }
            None => Vec::new(),
        };
        let rate_limit = match raw.rate_limit {
            Some(r) => RateLimiter::from_raw(r)?,
            None => None,
        };
        let auth = match raw.basic_auth_users {
            Some(users) if !users.is_empty() => Some(BasicAuth::new(users)?),
            _ => None,
        };
        Ok(WebConfig {
            tls,
            client_auth,
            auth,
            headers,
            rate_limit,
        })
    }

    /// One line for the log: what is on, never a secret.
    pub fn summary(&self) -> String {
        let tls = match (&self.tls, self.client_auth) {
            (None, _) => "off".to_string(),
            (Some(_), ClientAuth::None) => "on".to_string(),
            (Some(_), ClientAuth::VerifyIfGiven) => {
                "on, client certificates verified if given".into()
            }
            (Some(_), ClientAuth::RequireAndVerify) => "on, client certificates required".into(),
        };
        let auth = match &self.auth {
            Some(a) => format!("{} user(s)", a.users.len()),
            None => "off".into(),
        };
        format!("TLS {tls}; basic auth {auth}")
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn parse(text: &str) -> Result<WebConfig> {
        WebConfig::parse(text, Path::new("/nonexistent"))
    }

    fn err(text: &str) -> (String, String) {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(b) => (b.key, b.reason),
        }
    }

    fn header(user: &str, pass: &str) -> Vec<u8> {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {enc}").into_bytes()
    }

    #[test]
    fn a_key_with_a_newline_is_escaped_in_the_error() {
        let (key, _) = err("http_server_config:\n  headers: { \"X-Fra\\n\\nme\": deny }\n");
        assert_eq!(key, "http_server_config.headers.X-Fra\\n\\nme");
        let (key, _) = err("basic_auth_users:\n  \"a\\nb\": 1\n");
        assert!(!key.contains('\n'), "{key:?}");
    }

    #[test]
    fn empty_file_is_plain_http_without_auth() {
        for text in [
            "",
            "# nothing\n",
            "{}",
            "tls_server_config: {}\nbasic_auth_users: {}\n",
        ] {
            let c = parse(text).unwrap_or_else(|b| panic!("{text:?}: {}: {}", b.key, b.reason));
            assert!(c.tls.is_none() && c.auth.is_none(), "{text:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let (_, r) = err("basic_auth_user: {}\n");
        assert!(r.contains("basic_auth_user"), "{r}");
        let (_, r) = err("tls_server_config:\n  cert_fil: x\n");
        assert!(r.contains("cert_fil"), "{r}");
    }

    #[test]
    fn bad_hashes_are_refused_without_echoing_them() {
        for v in [
            "hunter2",
            "$2x$10$abcdefghijklmnopqrstuuOyLhJ8rGqO/6uU0m3Cq9E4wjS2u4cuG",
            "$2b$03$abcdefghijklmnopqrstuuOyLhJ8rGqO/6uU0m3Cq9E4wjS2u4cuG",
            "$2b$10$short",
        ] {
            let (k, r) = err(&format!("basic_auth_users:\n  alice: '{v}'\n"));
            assert_eq!(k, "basic_auth_users.alice");
            assert!(!r.contains(v), "{r}");
        }
        let (k, _) = err("basic_auth_users:\n  alice: [1]\n");
        assert_eq!(k, "basic_auth_users.alice");
    }

    #[test]
    fn tls_keys_are_checked() {
        let cases = [
            (
                "tls_server_config:\n  key_file: k.pem\n",
                "tls_server_config.cert_file",
            ),
            (
                "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
                "tls_server_config.cert_file",
            ),
            (
                "tls_server_config:\n  cert: x\n  cert_file: c.pem\n",
                "tls_server_config.cert_file",
            ),
            (
                "tls_server_config:\n  cert: x\n",
                "tls_server_config.key_file",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n",
                "tls_server_config.cert",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(err(text).0, key, "{text}");
        }
    }

    #[test]
    fn other_sections() {
        assert_eq!(
            err("http_server_config:\n  headers:\n    X-Powered-By: me\n").0,
            "http_server_config.headers.X-Powered-By"
        );
        assert_eq!(
            err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").0,
            "http_server_config.headers.X-Frame-Options"
        );
        let c =
            parse("http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n")
                .ok()
                .unwrap();
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
        assert_eq!(err("rate_limit:\n  interval: 1s\n").0, "rate_limit.burst");
        assert_eq!(
            err("rate_limit:\n  burst: 1\n  interval: soon\n").0,
            "rate_limit.interval"
        );
        let c = parse("rate_limit:\n  burst: 2\n  interval: 1h\n")
            .ok()
            .unwrap();
        let rl = c.rate_limit.unwrap();
        assert!(rl.allow() && rl.allow() && !rl.allow());
    }

    #[tokio::test]
    async fn passwords_are_checked_and_successes_cached() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let c = parse(&format!(
            "basic_auth_users:\n  alice: '{hash}'\n  bob: '{hash}'\n"
        ))
        .ok()
        .unwrap();
        let auth = c.auth.unwrap();
        assert!(auth.decoy.parse::<bcrypt::HashParts>().is_ok());
        assert_eq!(auth.decoy[..29], hash[..29]);
        assert!(!bcrypt::verify("s3cret", &auth.decoy).unwrap());
        assert!(auth.check(Some(&header("alice", "s3cret"))).await);
        assert_eq!(auth.bcrypt_runs(), 1);
        for _ in 0..5 {
            assert!(auth.check(Some(&header("alice", "s3cret"))).await);
        }
        assert_eq!(auth.bcrypt_runs(), 1, "cached after the first success");
        assert!(!auth.check(Some(&header("alice", "wrong"))).await);
        assert!(!auth.check(Some(&header("alice", "wrong"))).await);
        assert_eq!(auth.bcrypt_runs(), 3, "failures are never cached");
        // An unknown user with a known user's password, and no header at all.
        assert!(!auth.check(Some(&header("carol", "s3cret"))).await);
        assert!(!auth.check(Some(&header("Alice", "s3cret"))).await);
        assert!(!auth.check(None).await);
        assert!(auth.check(Some(&header("bob", "s3cret"))).await);
        // $2a$ and $2y$ hashes verify too.
        for prefix in ["$2a$", "$2y$"] {
            let h = format!("{prefix}{}", &hash[4..]);
            let c = parse(&format!("basic_auth_users:\n  u: '{h}'\n"))
                .ok()
                .unwrap();
            assert!(c.auth.unwrap().check(Some(&header("u", "s3cret"))).await);
        }
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(
            &p,
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem\n",
        )
        .unwrap();
        let e = WebConfig::load(&p).err().unwrap();
        assert_eq!(e.key, "tls_server_config.cert_file");
        let line = e.to_string();
        assert!(
            line.contains(&dir.path().join("nope.pem").display().to_string()),
            "{line}"
        );
        assert!(line.starts_with("invalid web.config.file "), "{line}");
        assert!(!line.contains('\n'));
        let e = WebConfig::load(&dir.path().join("missing.yml"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("missing.yml"), "{e}");
    }
}
