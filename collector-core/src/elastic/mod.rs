//! The Elasticsearch sink: `_bulk` NDJSON over HTTP(S), gzip-compressed, into a data stream
//! (`create` actions, the default) or into dated indices (`index` actions), with documents in
//! Elastic Common Schema terms (see `doc.rs` and docs/METRICS.md). Works with Elasticsearch 7.9+
//! and 8, and with OpenSearch in dated-index mode.
//!
//! Before the first batch it makes sure the index template is there (`HEAD`, then `PUT` when
//! missing, or always when told to overwrite); it checks again after the server was
//! unreachable, which covers a cluster rebuilt empty.
//!
//! Replies: a 2xx answer is read item by item (`response.rs`): 2xx items and `create` items
//! answered 409 (the same id is already there: a resend) are delivered; 429 and 5xx items are
//! retried; other refusals (a mapping conflict) are counted as failed and logged with their
//! reason, never retried. For the request as a whole: 400 and 413 refuse the batch (the runner
//! halves it to isolate the culprit); 401, 403, 404, 429, 5xx and no answer are retried,
//! keeping the data.

pub(crate) mod doc;
pub(crate) mod response;
pub mod template;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::collector::Snapshot;
use crate::sink::retry::parse_retry_after;
use crate::sink::{Outcome, Sink};

pub use doc::{Destination, Encoder, IndexPattern};

/// The default data stream (`<type>-<dataset>-<namespace>`, Elastic's naming scheme).
pub const DEFAULT_DATA_STREAM: &str = "metrics-container-default";
/// The default pattern of dated indices.
pub const DEFAULT_INDEX_PATTERN: &str = "container-metrics-%Y.%m.%d";

pub use crate::sink::common::{hostname, Secret};
use crate::Error;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

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
    /// An API key: either the `encoded` value Elasticsearch returns (base64 of `id:api_key`),
    /// or `id:api_key` itself. Sent as `Authorization: ApiKey <base64>`.
    ApiKey(Secret),
}

/// Where documents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A data stream of this name; `create` actions.
    DataStream(String),
    /// Dated indices from this pattern (`%Y %m %d %H`, UTC); `index` actions.
    Indices(String),
}

/// The index template the sink installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateConfig {
    /// Install it at all (off when an administrator manages templates, or the sink's user may
    /// not: then documents get whatever mapping the cluster gives them).
    pub install: bool,
    /// Its name; by default the data stream's name, or the index pattern's literal prefix
    /// (`container-metrics`).
    pub name: Option<String>,
    /// Replace a template of that name that is already there.
    pub overwrite: bool,
    /// Above the 100 of Elasticsearch's built-in `metrics-*-*` template.
    pub priority: u32,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            install: true,
            name: None,
            overwrite: false,
            priority: 200,
        }
    }
}

/// Settings of the Elasticsearch sink; [`ElasticConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticConfig {
    /// Base URL, like `https://es.example:9200` (a path prefix behind a proxy is kept).
    pub url: String,
    /// How to authenticate; none by default.
    pub auth: Auth,
    /// Where documents go; the data stream `metrics-container-default` by default.
    pub target: Target,
    /// The index template to install before the first batch.
    pub template: TemplateConfig,
    /// `host.name`; the machine's hostname when `None`.
    pub host: Option<String>,
    /// Gzip the `_bulk` body (`Content-Encoding: gzip`); on by default.
    pub gzip: bool,
    /// How long one request may take before it fails; 10 s by default.
    pub timeout: Duration,
    /// PEM file of an extra CA to trust for https.
    pub ca_file: Option<PathBuf>,
    /// Write a document of the machine's own figures (`collector.machine.*`) with each push.
    pub machine_document: bool,
}

impl ElasticConfig {
    /// Data-stream mode into `metrics-container-default`, gzip on, template installed.
    pub fn new(url: impl Into<String>) -> Self {
        ElasticConfig {
            url: url.into(),
            auth: Auth::None,
            target: Target::DataStream(DEFAULT_DATA_STREAM.into()),
            template: TemplateConfig::default(),
            host: None,
            gzip: true,
            timeout: Duration::from_secs(10),
            ca_file: None,
            machine_document: true,
        }
    }
}

/// The template to install, ready to send.
#[derive(Debug)]
struct TemplatePlan {
    name: String,
    url: String,
    body: Vec<u8>,
    overwrite: bool,
}

/// The Elasticsearch (or OpenSearch) sink; run it with a [`SinkRunner`](crate::sink::SinkRunner).
pub struct ElasticSink {
    client: reqwest::Client,
    bulk_url: String,
    auth: Option<String>,
    gzip: bool,
    encoder: Encoder,
    template: Option<TemplatePlan>,
    /// The template is known to be there (or cannot be managed by us).
    template_ready: bool,
}

impl fmt::Debug for ElasticSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticSink")
            .field("bulk_url", &self.bulk_url)
            .field("destination", self.encoder.destination())
            .field("template", &self.template.as_ref().map(|t| &t.name))
            .finish_non_exhaustive()
    }
}

impl ElasticSink {
    /// Checks the URL and names, and builds the client; fails on a bad URL, data stream name,
    /// index pattern or template name, or an unreadable CA file.
    pub fn new(cfg: ElasticConfig) -> Result<Self, Error> {
        let base = cfg.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid {
                what: "url",
                value: cfg.url.clone(),
                reason: "must start with http:// or https://".into(),
            });
        }
        if base.contains(['?', '#']) {
            return Err(Error::Invalid {
                what: "url",
                value: cfg.url.clone(),
                reason: "must not hold a query or fragment".into(),
            });
        }
        let name_err = |what: &'static str, name: &str, reason: String| Error::Invalid {
            what,
            value: name.to_string(),
            reason,
        };
        let (dest, patterns, default_name) = match &cfg.target {
            Target::DataStream(name) => {
                doc::check_index_name(name).map_err(|r| name_err("data stream name", name, r))?;
                (
                    Destination::DataStream(name.clone()),
                    vec![name.clone()],
                    name.clone(),
                )
            }
            Target::Indices(pattern) => {
                let p = IndexPattern::parse(pattern)
                    .map_err(|r| name_err("index pattern", pattern, r))?;
                let prefix = p.prefix().trim_end_matches(['-', '.', '_']);
                let name = if prefix.is_empty() {
                    "container-metrics".to_string()
                } else {
                    prefix.to_string()
                };
                let wildcard = p.wildcard();
                (Destination::Indices(p), vec![wildcard], name)
            }
        };
        let template = if cfg.template.install {
            let name = cfg.template.name.clone().unwrap_or(default_name);
            doc::check_index_name(&name).map_err(|r| name_err("template name", &name, r))?;
            let body = template::body(
                &patterns,
                matches!(cfg.target, Target::DataStream(_)),
                cfg.template.priority,
            );
            Some(TemplatePlan {
                url: format!("{base}/_index_template/{name}"),
                name,
                body: serde_json::to_vec(&body).unwrap_or_default(),
                overwrite: cfg.template.overwrite,
            })
        } else {
            None
        };
        let auth = match &cfg.auth {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{username}:{}", password.0))
            )),
            Auth::ApiKey(k) if k.0.contains(':') => Some(format!("ApiKey {}", BASE64.encode(&k.0))),
            Auth::ApiKey(k) => Some(format!("ApiKey {}", k.0.trim())),
        };
        let client = crate::sink::common::client(cfg.timeout, cfg.ca_file.as_deref())?;
        Ok(ElasticSink {
            client,
            // Only what classification needs comes back: a 5,000-item answer stays small.
            bulk_url: format!("{base}/_bulk?filter_path=errors,items.*.status,items.*.error"),
            auth,
            gzip: cfg.gzip,
            encoder: {
                let mut e = Encoder::new(cfg.host.unwrap_or_else(hostname), dest);
                e.machine = cfg.machine_document;
                e
            },
            template,
            template_ready: false,
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, url);
        match &self.auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// Makes sure the template is there before documents create indices. `Err` is the
    /// outcome for the batch (retry: the server is not answering properly).
    async fn ensure_template(&mut self) -> Result<(), Outcome> {
        if self.template_ready {
            return Ok(());
        }
        let Some(t) = &self.template else {
            self.template_ready = true;
            return Ok(());
        };
        let retry = |reason: String, after: Option<Duration>| Outcome::Retry { after, reason };
        if !t.overwrite {
            let r = self
                .request(reqwest::Method::HEAD, &t.url)
                .send()
                .await
                .map_err(|e| retry(format!("HEAD {}: {e}", t.url), None))?;
            match r.status().as_u16() {
                200 => {
                    tracing::info!(template = %t.name, "index template already there, left in place");
                    self.template_ready = true;
                    return Ok(());
                }
                404 => {}
                s @ (401 | 403) => {
                    tracing::warn!(
                        template = %t.name,
                        "may not read index templates (HTTP {s}); sending without installing it"
                    );
                    self.template_ready = true;
                    return Ok(());
                }
                s => {
                    return Err(retry(
                        format!("HEAD {}: HTTP {s}", t.url),
                        after(r.headers()),
                    ))
                }
            }
        }
        let r = self
            .request(reqwest::Method::PUT, &t.url)
            .header("Content-Type", "application/json")
            .body(t.body.clone())
            .send()
            .await
            .map_err(|e| retry(format!("PUT {}: {e}", t.url), None))?;
        let status = r.status().as_u16();
        let ra = after(r.headers());
        let text = r.bytes().await.unwrap_or_default();
        match status {
            200..=299 => {
                tracing::info!(template = %t.name, overwrite = t.overwrite, "index template installed");
                self.template_ready = true;
                Ok(())
            }
            429 | 500..=599 => Err(retry(
                format!(
                    "PUT {}: HTTP {status}: {}",
                    t.url,
                    response::request_error(&text)
                ),
                ra,
            )),
            // Not ours to manage (401/403), or a cluster that does not take it (400): documents
            // still go, with the cluster's own mappings.
            _ => {
                tracing::warn!(
                    template = %t.name,
                    "index template not installed (HTTP {status}: {}); sending without it",
                    response::request_error(&text)
                );
                self.template_ready = true;
                Ok(())
            }
        }
    }

    /// The NDJSON body: items joined by newlines, with a final newline.
    fn build_body(&self, batch: &[Vec<u8>]) -> std::io::Result<Vec<u8>> {
        let size: usize = batch.iter().map(|i| i.len() + 1).sum();
        let mut buf = Vec::with_capacity(if self.gzip { size / 4 } else { size });
        if self.gzip {
            let mut enc = flate2::write::GzEncoder::new(buf, flate2::Compression::fast());
            for item in batch {
                enc.write_all(item)?;
                enc.write_all(b"\n")?;
            }
            enc.finish()
        } else {
            for item in batch {
                buf.extend_from_slice(item);
                buf.push(b'\n');
            }
            Ok(buf)
        }
    }

    /// The outcome for a 2xx answer.
    fn verdict(&self, batch: &[Vec<u8>], body: &[u8]) -> Outcome {
        let v = match response::classify(body, batch.len()) {
            Ok(v) => v,
            Err(reason) => {
                return Outcome::Retry {
                    after: None,
                    reason,
                }
            }
        };
        if v.retry.is_empty() && v.rejected.is_empty() {
            return Outcome::Delivered;
        }
        // Nothing landed and everything may land later: a plain retry, so back-off grows.
        if v.retry.len() == batch.len() {
            return Outcome::Retry {
                after: None,
                reason: format!("all {} items refused for now (429/5xx)", batch.len()),
            };
        }
        let rejected = v
            .rejected
            .into_iter()
            .map(|e| {
                let what = batch
                    .get(e.pos)
                    .map(|item| describe_item(item))
                    .unwrap_or_default();
                (e.pos, format!("HTTP {} {}{what}", e.status, e.reason))
            })
            .collect();
        Outcome::Partial {
            retry: v.retry,
            rejected,
        }
    }
}

/// `[index i, id x, container /cgroup]` for a refused item, from its action and document.
fn describe_item(item: &[u8]) -> String {
    let mut lines = item.splitn(2, |&b| b == b'\n');
    let action: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_slice(l).ok())
        .unwrap_or_default();
    let doc: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_slice(l).ok())
        .unwrap_or_default();
    let meta = action
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_default();
    format!(
        " [index {}, id {}, container {}, {} {}]",
        meta["_index"].as_str().unwrap_or("?"),
        meta["_id"].as_str().unwrap_or("?"),
        doc["collector"]["cgroup"].as_str().unwrap_or("?"),
        doc["event"]["kind"].as_str().unwrap_or("?"),
        doc["@timestamp"].as_str().unwrap_or("?"),
    )
}

fn after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

impl Sink for ElasticSink {
    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    /// `_bulk` takes no empty body: the cluster's root, which answers 200 only with the
    /// credentials (where security is on). A 403 there is a user let in without the
    /// `monitor` privilege, which writing documents does not need: taken as reachable.
    async fn probe(&mut self) -> Result<String, String> {
        let base = self
            .bulk_url
            .split("/_bulk")
            .next()
            .unwrap_or(&self.bulk_url)
            .to_string();
        let what = format!("GET {base}/");
        let req = self.request(reqwest::Method::GET, &format!("{base}/"));
        match crate::sink::probe_request(req, what.clone()).await {
            Err(e) if e.starts_with(&format!("{what}: HTTP 403")) => Ok(format!(
                "{what}: HTTP 403 (authenticated; the user lacks the monitor privilege, which writing does not need)"
            )),
            other => other,
        }
    }

    fn encode(&mut self, snapshot: &Snapshot, metrics: bool, out: &mut Vec<Vec<u8>>) {
        self.encoder.encode(snapshot, metrics, out);
    }

    async fn send(&mut self, batch: &[Vec<u8>]) -> Outcome {
        if let Err(o) = self.ensure_template().await {
            return o;
        }
        let body = match self.build_body(batch) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("compressing: {e}"),
                }
            }
        };
        let mut req = self
            .request(reqwest::Method::POST, &self.bulk_url)
            .header("Content-Type", "application/x-ndjson");
        if self.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                // Unreachable: the cluster may come back rebuilt, without the template.
                self.template_ready = false;
                return Outcome::Retry {
                    after: None,
                    reason: format!("POST {}: {e}", self.bulk_url),
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = after(resp.headers());
        let text = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Retry {
                    after: retry_after,
                    reason: format!("reading the _bulk answer: {e}"),
                }
            }
        };
        if (200..300).contains(&status) {
            return self.verdict(batch, &text);
        }
        let reason = format!("HTTP {status}: {}", response::request_error(&text));
        match status {
            400 | 413 => Outcome::Rejected { reason },
            _ => Outcome::Retry {
                after: retry_after,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_headers() {
        assert_eq!(
            BASE64.encode("elastic:changeme"),
            "ZWxhc3RpYzpjaGFuZ2VtZQ=="
        );
        assert_eq!(BASE64.encode("ab"), "YWI=");
        assert_eq!(BASE64.encode(""), "");
        let mut c = ElasticConfig::new("http://127.0.0.1:9200/");
        c.auth = Auth::Basic {
            username: "elastic".into(),
            password: Secret("changeme".into()),
        };
        assert_eq!(
            ElasticSink::new(c.clone()).unwrap().auth.as_deref(),
            Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ==")
        );
        c.auth = Auth::ApiKey(Secret("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw".into()));
        assert_eq!(
            ElasticSink::new(c.clone()).unwrap().auth.as_deref(),
            Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
        c.auth = Auth::ApiKey(Secret(
            "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into(),
        ));
        assert_eq!(
            ElasticSink::new(c.clone()).unwrap().auth.as_deref(),
            Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
        assert_eq!(format!("{:?}", c.auth), "ApiKey(\"***\")");
    }

    #[test]
    fn urls_names_and_templates() {
        let s = ElasticSink::new(ElasticConfig::new("https://es:9200/proxy/")).unwrap();
        assert_eq!(
            s.bulk_url,
            "https://es:9200/proxy/_bulk?filter_path=errors,items.*.status,items.*.error"
        );
        let t = s.template.as_ref().unwrap();
        assert_eq!(t.name, "metrics-container-default");
        assert_eq!(
            t.url,
            "https://es:9200/proxy/_index_template/metrics-container-default"
        );
        let body: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            body["index_patterns"],
            serde_json::json!(["metrics-container-default"])
        );
        assert_eq!(body["data_stream"], serde_json::json!({}));

        let mut c = ElasticConfig::new("http://es:9200");
        c.target = Target::Indices(DEFAULT_INDEX_PATTERN.into());
        let s = ElasticSink::new(c.clone()).unwrap();
        let t = s.template.as_ref().unwrap();
        assert_eq!(t.name, "container-metrics");
        let body: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            body["index_patterns"],
            serde_json::json!(["container-metrics-*.*.*"])
        );
        assert!(body.get("data_stream").is_none());

        c.target = Target::Indices("Bad-%Y".into());
        assert!(matches!(
            ElasticSink::new(c.clone()),
            Err(Error::Invalid { .. })
        ));
        c.target = Target::DataStream("a,b".into());
        assert!(ElasticSink::new(c.clone()).is_err());
        c.target = Target::DataStream(DEFAULT_DATA_STREAM.into());
        c.template.install = false;
        assert!(ElasticSink::new(c.clone()).unwrap().template.is_none());
        assert!(ElasticSink::new(ElasticConfig::new("es:9200")).is_err());
        assert!(ElasticSink::new(ElasticConfig::new("http://es:9200/?x=1")).is_err());
        let mut c = ElasticConfig::new("http://es:9200");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(
            ElasticSink::new(c),
            Err(Error::ReadSetting { .. })
        ));
    }

    #[test]
    fn verdicts() {
        let s = ElasticSink::new(ElasticConfig::new("http://es:9200")).unwrap();
        let item = |cg: &str| {
            format!("{{\"create\":{{\"_index\":\"ds\",\"_id\":\"{cg}\"}}}}\n{{\"@timestamp\":\"t\",\"event\":{{\"kind\":\"metric\"}},\"collector\":{{\"cgroup\":\"/{cg}\"}}}}")
                .into_bytes()
        };
        let batch = vec![item("a"), item("b"), item("c")];
        assert_eq!(
            s.verdict(&batch, br#"{"errors":false}"#),
            Outcome::Delivered
        );
        let all_429 = br#"{"errors":true,"items":[{"create":{"status":429}},{"create":{"status":429}},{"create":{"status":503}}]}"#;
        assert!(matches!(s.verdict(&batch, all_429), Outcome::Retry { .. }));
        let mixed = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429}},{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"bad field"}}}]}"#;
        match s.verdict(&batch, mixed) {
            Outcome::Partial { retry, rejected } => {
                assert_eq!(retry, vec![1]);
                assert_eq!(rejected.len(), 1);
                assert_eq!(rejected[0].0, 2);
                assert!(
                    rejected[0]
                        .1
                        .contains("document_parsing_exception: bad field"),
                    "{}",
                    rejected[0].1
                );
                assert!(rejected[0].1.contains("container /c"), "{}", rejected[0].1);
                assert!(rejected[0].1.contains("id c"), "{}", rejected[0].1);
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            s.verdict(&batch, b"not json"),
            Outcome::Retry { .. }
        ));
    }
}
