//! The Prometheus remote-write sink (Remote-Write 1.0): the exporter's own series, named and
//! labelled as on /metrics, pushed to a store that takes remote write (Prometheus with its
//! receiver on, Cortex, Mimir, Thanos Receive, VictoriaMetrics).
//!
//! A request is a snappy (block format) compressed `prometheus.WriteRequest`, with
//! `Content-Type: application/x-protobuf`, `Content-Encoding: snappy` and
//! `X-Prometheus-Remote-Write-Version: 0.1.0`. Each queue item is one sample of one series
//! ([`proto`]); a batch gathers each series' samples, oldest first, into one `TimeSeries`.
//!
//! Replies, as Prometheus' own remote-write client takes them: 2xx delivered; 5xx, 429 (its
//! `Retry-After` honoured) and no answer are retried, keeping the data; any other status
//! (400 for out-of-order samples, 401, 413, ...) drops the batch, counted as failed and
//! logged, since sending the same request again would get the same answer.
//!
//! Remote-Write 2.0 is not spoken: it is still experimental in Prometheus, and every
//! receiver takes 1.0.

pub mod proto;
mod series;
mod text;

pub use series::SeriesEncoder;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::collector::Snapshot;
use crate::prometheus::Options;
pub use crate::sink::common::{Secret, Tls};
use crate::sink::retry::parse_retry_after;
use crate::sink::{Outcome, Sink};
use crate::Error;

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header (the default).
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The user's password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// More series to push with each snapshot's: a function appending them to a `String` in the
/// Prometheus text format (0.0.4), as an embedder's own registry serves them.
#[derive(Clone)]
pub struct ExtraSeries(pub Arc<dyn Fn(&mut String) + Send + Sync>);

impl fmt::Debug for ExtraSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExtraSeries")
    }
}

impl PartialEq for ExtraSeries {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ExtraSeries {}

/// Settings of the remote-write sink; [`RemoteWriteConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteWriteConfig {
    /// The receiver's write endpoint, like `http://mimir:8080/api/v1/push`.
    pub url: String,
    /// Added to every series that has no label of that name (the node, the cluster).
    pub external_labels: Vec<(String, String)>,
    /// Sent with every request (`X-Scope-OrgID` for a tenant, say).
    pub headers: Vec<(String, String)>,
    /// How to authenticate; none by default.
    pub auth: Auth,
    /// How long one request may take before it fails; 10 s by default.
    pub timeout: Duration,
    /// Extra CA, client certificate and verification for https; the built-in roots by default.
    pub tls: Tls,
    /// As /metrics has them (the runtime labels exposed), so the series are the same.
    pub options: Options,
    /// The `User-Agent` header; `collector-core/<version>` by default.
    pub user_agent: String,
    /// Pushed with each snapshot's series, at its time (the exporter's own series).
    pub extra: Option<ExtraSeries>,
}

impl RemoteWriteConfig {
    /// No labels, headers, auth or extra series; a 10 s timeout and the default [`Options`].
    pub fn new(url: impl Into<String>) -> Self {
        RemoteWriteConfig {
            url: url.into(),
            external_labels: Vec::new(),
            headers: Vec::new(),
            auth: Auth::None,
            timeout: Duration::from_secs(10),
            tls: Tls::default(),
            options: Options::default(),
            user_agent: concat!("collector-core/", env!("CARGO_PKG_VERSION")).into(),
            extra: None,
        }
    }
}

/// Headers the sink sets itself; a configured header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-authorization",
    "transfer-encoding",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// The Prometheus remote-write sink; run it with a [`SinkRunner`](crate::sink::SinkRunner).
pub struct RemoteWriteSink {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    encoder: SeriesEncoder,
    extra: Option<ExtraSeries>,
    /// The extra series' text, reused.
    extra_text: String,
    /// The request before and after compression, reused.
    body: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl fmt::Debug for RemoteWriteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWriteSink")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A label name Prometheus takes, and not one of its reserved `__` names.
pub fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("a label name is letters, digits and _, not starting with a digit".into());
    }
    if name.starts_with("__") {
        return Err("names starting with __ are Prometheus' own".into());
    }
    Ok(())
}

impl RemoteWriteSink {
    /// Checks the URL, external labels and headers, and builds the client; fails on any that is
    /// invalid, on a header the sink sets itself, or on unreadable TLS files.
    pub fn new(cfg: RemoteWriteConfig) -> Result<Self, Error> {
        let invalid = |what: &'static str, value: &str, reason: String| Error::Invalid {
            what,
            value: value.to_string(),
            reason,
        };
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(invalid(
                "url",
                &cfg.url,
                "must start with http:// or https://".into(),
            ));
        }
        for (name, value) in &cfg.external_labels {
            check_label_name(name).map_err(|r| invalid("external label", name, r))?;
            if value.is_empty() {
                return Err(invalid("external label", name, "empty value".into()));
            }
        }
        let mut headers = HeaderMap::new();
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value).map_err(|e| invalid("header", name, e.to_string()))
        };
        headers.insert("content-type", header("", "application/x-protobuf")?);
        headers.insert("content-encoding", header("", "snappy")?);
        headers.insert("x-prometheus-remote-write-version", header("", "0.1.0")?);
        headers.insert("user-agent", header("user agent", &cfg.user_agent)?);
        let auth = match &cfg.auth {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{}", password.0))
            )),
            Auth::Bearer(token) => Some(format!("Bearer {}", token.0)),
        };
        if let Some(a) = auth {
            let mut v = header("authorization", &a)?;
            v.set_sensitive(true);
            headers.insert("authorization", v);
        }
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid("header", name, e.to_string()))?;
            if RESERVED_HEADERS.contains(&n.as_str()) {
                return Err(invalid("header", name, "set by the sink itself".into()));
            }
            let v = HeaderValue::from_str(value)
                .map_err(|e| invalid("header", name, format!("its value: {e}")))?;
            headers.insert(n, v);
        }
        let client = crate::sink::common::client_tls(cfg.timeout, &cfg.tls)?;
        Ok(RemoteWriteSink {
            client,
            url: cfg.url,
            headers,
            encoder: SeriesEncoder::new(cfg.options, cfg.external_labels),
            extra: cfg.extra,
            extra_text: String::new(),
            body: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        })
    }

    /// The request body for a batch (before compression): each series once, its samples
    /// oldest first. Returns the indices of items that are not the encoder's (a damaged
    /// spool), which are left out.
    pub fn write_request(batch: &[Vec<u8>], body: &mut Vec<u8>) -> Vec<usize> {
        body.clear();
        let mut bad = Vec::new();
        let mut parts: Vec<(&[u8], i64, &[u8])> = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            match proto::split_item(item) {
                Some((sample, labels, ts)) => parts.push((labels, ts, sample)),
                None => bad.push(i),
            }
        }
        // Stable: samples of one series and timestamp keep their queue order.
        parts.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        for run in parts.chunk_by(|a, b| a.0 == b.0) {
            proto::put_series(body, run[0].0, run.iter().map(|p| p.2));
        }
        bad
    }
}

impl Sink for RemoteWriteSink {
    fn kind(&self) -> &'static str {
        "remote_write"
    }

    /// A write request with no series, compressed and sent as a real one is: receivers take
    /// it (2xx) where a delivery would be taken (reachable, credentials and tenant headers
    /// good), and store nothing.
    async fn probe(&mut self) -> Result<String, String> {
        let mut empty = vec![0; snap::raw::max_compress_len(0)];
        let n = self
            .snappy
            .compress(&[], &mut empty)
            .map_err(|e| format!("snappy: {e}"))?;
        empty.truncate(n);
        let req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(empty);
        crate::sink::probe_request(req, format!("POST {}", self.url)).await
    }

    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        // Lifecycle events have no series; only the metrics go.
        if !metrics {
            return;
        }
        self.extra_text.clear();
        if let Some(ExtraSeries(f)) = &self.extra {
            f(&mut self.extra_text);
        }
        self.encoder.encode_with(snapshot, &self.extra_text, out);
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        let bad = Self::write_request(batch, &mut self.body);
        let reject = |ids: &mut dyn Iterator<Item = usize>, reason: &str| Outcome::Partial {
            retry: Vec::new(),
            rejected: ids.map(|i| (i, reason.to_string())).collect(),
        };
        if bad.len() == batch.len() {
            return reject(&mut bad.into_iter(), "not a remote-write sample");
        }
        self.compressed
            .resize(snap::raw::max_compress_len(self.body.len()), 0);
        let n = match self.snappy.compress(&self.body, &mut self.compressed) {
            Ok(n) => n,
            Err(e) => {
                return reject(&mut (0..batch.len()), &format!("snappy: {e}"));
            }
        };
        let resp = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(self.compressed[..n].to_vec())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("POST {}: {e}", self.url),
                }
            }
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return if bad.is_empty() {
                Outcome::Delivered
            } else {
                reject(&mut bad.into_iter(), "not a remote-write sample")
            };
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = resp.text().await.unwrap_or_default();
        let reason = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(300).collect::<String>()
        );
        if status == 429 || status >= 500 {
            Outcome::Retry {
                after: retry_after,
                reason,
            }
        } else {
            reject(&mut (0..batch.len()), &reason)
        }
    }
}

#[cfg(test)]
mod tests;
