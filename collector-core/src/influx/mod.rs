//! The InfluxDB sink: line protocol over the v1 (`/write?db=&rp=`, basic auth) or v2
//! (`/api/v2/write?org=&bucket=`, `Authorization: Token`) API, gzip-compressed.
//!
//! Replies: 2xx delivered; 400 and 413 refuse the batch (the runner splits it to isolate the
//! bad points — InfluxDB keeps the good points of a partial write, and a point written twice
//! is the same point, so splitting costs no duplicates); 401, 403 and 404 (a wrong token or a
//! database not yet made) and 429 / 5xx / no answer are retried, keeping the data.

pub mod line;
pub mod schema;

use std::io::Write;
use std::time::Duration;

use crate::collector::Snapshot;
use crate::sink::retry::parse_retry_after;
use crate::sink::{Outcome, Sink};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::sink::common::hostname;
pub use crate::sink::common::Secret;
use crate::Error;

/// Which write API, with its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// InfluxDB 1.x: `/write` with basic auth.
    V1 {
        /// The database to write to.
        database: String,
        /// The retention policy (`rp`); the database's default when `None`.
        retention_policy: Option<String>,
        /// User for basic auth; no `Authorization` header when `None`.
        username: Option<String>,
        /// The user's password; empty when `None`.
        password: Option<Secret>,
    },
    /// InfluxDB 2 and later: `/api/v2/write` with a token.
    V2 {
        /// The organization, by name or ID.
        org: String,
        /// The bucket to write to.
        bucket: String,
        /// The API token, sent as `Authorization: Token <token>`.
        token: Secret,
    },
}

/// Settings of the InfluxDB sink; [`InfluxConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfluxConfig {
    /// Base URL, like `http://127.0.0.1:8086`.
    pub url: String,
    /// Which write API, with its credentials.
    pub api: Api,
    /// The `host` tag; the machine's hostname when `None`.
    pub host: Option<String>,
    /// Write unsigned integers with `u` (InfluxDB 2 and later; 1.x refuses them).
    pub unsigned: bool,
    /// Gzip the request body (`Content-Encoding: gzip`); on by default.
    pub gzip: bool,
    /// How long one request may take before it fails; 10 s by default.
    pub timeout: Duration,
    /// PEM file of an extra CA to trust for https.
    pub ca_file: Option<std::path::PathBuf>,
}

impl InfluxConfig {
    /// Gzip on, signed integers only, a 10 s timeout, the machine's hostname as `host`.
    pub fn new(url: impl Into<String>, api: Api) -> Self {
        InfluxConfig {
            url: url.into(),
            api,
            host: None,
            unsigned: false,
            gzip: true,
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

/// The InfluxDB sink; run it with a [`SinkRunner`](crate::sink::SinkRunner).
pub struct InfluxSink {
    client: reqwest::Client,
    write_url: String,
    auth: Option<String>,
    gzip: bool,
    unsigned: bool,
    host: String,
    body: Vec<u8>,
}

impl InfluxSink {
    /// Checks the URL and builds the client; fails on a URL that is not http(s) or an
    /// unreadable CA file.
    pub fn new(cfg: InfluxConfig) -> Result<Self, Error> {
        let base = cfg.url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid {
                what: "url",
                value: cfg.url.clone(),
                reason: "must start with http:// or https://".into(),
            });
        }
        let (write_url, auth) = match &cfg.api {
            Api::V1 {
                database,
                retention_policy,
                username,
                password,
            } => {
                let mut u = format!("{base}/write?precision=ns&db={}", query_escape(database));
                if let Some(rp) = retention_policy {
                    u.push_str("&rp=");
                    u.push_str(&query_escape(rp));
                }
                let auth = username.as_ref().map(|user| {
                    let pass = password.as_ref().map(|p| p.0.as_str()).unwrap_or("");
                    format!("Basic {}", BASE64.encode(format!("{user}:{pass}")))
                });
                (u, auth)
            }
            Api::V2 { org, bucket, token } => (
                format!(
                    "{base}/api/v2/write?precision=ns&org={}&bucket={}",
                    query_escape(org),
                    query_escape(bucket)
                ),
                Some(format!("Token {}", token.0)),
            ),
        };
        let client = crate::sink::common::client(cfg.timeout, cfg.ca_file.as_deref())?;
        Ok(InfluxSink {
            client,
            write_url,
            auth,
            gzip: cfg.gzip,
            unsigned: cfg.unsigned,
            host: cfg.host.unwrap_or_else(hostname),
            body: Vec::new(),
        })
    }
}

impl Sink for InfluxSink {
    fn kind(&self) -> &'static str {
        "influxdb"
    }

    /// A write of no points: the server answers 204 where points would be taken (the
    /// database or bucket exists, the credentials are good), and stores nothing.
    async fn probe(&mut self) -> Result<String, String> {
        let mut req = self.client.post(&self.write_url).body(Vec::new());
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let what = format!("POST {}", redact(&self.write_url));
        crate::sink::probe_request(req, what).await
    }

    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        schema::encode(snapshot, &self.host, self.unsigned, metrics, out);
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        self.body.clear();
        let body = if self.gzip {
            let mut enc = flate2::write::GzEncoder::new(
                std::mem::take(&mut self.body),
                flate2::Compression::fast(),
            );
            for item in batch {
                let _ = enc.write_all(item);
                let _ = enc.write_all(b"\n");
            }
            match enc.finish() {
                Ok(b) => b,
                Err(e) => {
                    return Outcome::Retry {
                        after: None,
                        reason: format!("compressing: {e}"),
                    }
                }
            }
        } else {
            let mut b = std::mem::take(&mut self.body);
            for item in batch {
                b.extend_from_slice(item);
                b.push(b'\n');
            }
            b
        };
        let mut req = self
            .client
            .post(&self.write_url)
            .header("Content-Type", "text/plain; charset=utf-8");
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = req.body(body).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("POST {}: {e}", redact(&self.write_url)),
                }
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let text = resp.text().await.unwrap_or_default();
        let reason = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(300).collect::<String>()
        );
        match status {
            400 | 413 | 422 => Outcome::Rejected { reason },
            _ => Outcome::Retry {
                after: retry_after,
                reason,
            },
        }
    }
}

/// The URL without credentials in its query, for logs.
fn redact(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// Everything but RFC 3986's unreserved characters (ASCII letters, digits, `-`, `_`, `.`,
/// `~`) is escaped, non-ASCII bytes included.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn query_escape(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_escapes() {
        assert_eq!(query_escape("my db/rp"), "my%20db%2Frp");
        assert_eq!(query_escape("aZ09-_.~%&=+é"), "aZ09-_.~%25%26%3D%2B%C3%A9");
    }

    #[test]
    fn urls_per_api() {
        let s = InfluxSink::new(InfluxConfig::new(
            "http://127.0.0.1:8086/",
            Api::V1 {
                database: "k8s".into(),
                retention_policy: Some("week".into()),
                username: Some("u".into()),
                password: Some(Secret("p".into())),
            },
        ))
        .unwrap();
        assert_eq!(
            s.write_url,
            "http://127.0.0.1:8086/write?precision=ns&db=k8s&rp=week"
        );
        assert_eq!(s.auth.as_deref(), Some("Basic dTpw"));
        let s = InfluxSink::new(InfluxConfig::new(
            "https://x:1",
            Api::V2 {
                org: "o".into(),
                bucket: "b".into(),
                token: Secret("t".into()),
            },
        ))
        .unwrap();
        assert_eq!(
            s.write_url,
            "https://x:1/api/v2/write?precision=ns&org=o&bucket=b"
        );
        assert_eq!(s.auth.as_deref(), Some("Token t"));
        assert!(InfluxSink::new(InfluxConfig::new(
            "127.0.0.1:8086",
            Api::V2 {
                org: "o".into(),
                bucket: "b".into(),
                token: Secret::default()
            }
        ))
        .is_err());
    }
}
