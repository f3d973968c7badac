//! `[[sinks]]` in the config file: parsed and checked at start, then each runs as its own
//! task fed with every snapshot.
//!
//! Secrets (`password`, `token`, `api_key`, `bearer_token`) may be given inline, or as `<name>_env` (the name
//! of an environment variable holding it) or `<name>_file` (a file holding it; one trailing
//! newline is dropped). Exactly one of the three. They never reach logs or `--help`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use collector_core::elastic::{self, ElasticConfig, ElasticSink};
use collector_core::influx::{Api, InfluxConfig, InfluxSink, Secret};
use collector_core::prometheus::Options;
use collector_core::remote_write::{self, RemoteWriteConfig, RemoteWriteSink};
use collector_core::sink::{RunnerConfig, SinkHandle, SinkRunner, SinkStats};
use serde::Deserialize;

use crate::error::{one_line, Error, Result};
use crate::value::parse_duration;

/// A sink as configured, checked and ready to start.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub name: String,
    pub kind: SinkKind,
    pub runner: RunnerConfig,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Influx(InfluxConfig),
    Elastic(ElasticConfig),
    RemoteWrite(RemoteWriteConfig),
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Influx(_) => "influxdb",
            SinkKind::Elastic(_) => "elasticsearch",
            SinkKind::RemoteWrite(_) => "remote_write",
        }
    }
}

const TYPES: &str = "influxdb, elasticsearch, remote_write";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ElasticFile {
    /// Data-stream mode (the default, into `metrics-container-default`).
    data_stream: Option<String>,
    /// Dated-index mode: a pattern like `container-metrics-%Y.%m.%d`.
    index: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    template: Option<bool>,
    template_name: Option<String>,
    template_overwrite: Option<bool>,
    template_priority: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteWriteFile {
    /// Values may name environment variables as `${NAME}` (the node's name from the
    /// downward API, say).
    external_labels: Option<BTreeMap<String, String>>,
    headers: Option<BTreeMap<String, String>>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    bearer_token: Option<String>,
    bearer_token_env: Option<String>,
    bearer_token_file: Option<PathBuf>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_insecure_skip_verify: Option<bool>,
}

/// Settings every sink takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: Option<String>,
    url: String,
    interval: Option<String>,
    timeout: Option<String>,
    batch_size: Option<usize>,
    batch_bytes: Option<usize>,
    queue_max_bytes: Option<usize>,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    gzip: Option<bool>,
    ca_file: Option<PathBuf>,
    host: Option<String>,
    /// The host's name from this environment variable: the node's name, which a DaemonSet
    /// passes through the downward API (the pod's own host name is not the node's).
    host_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfluxFile {
    // v1
    database: Option<String>,
    retention_policy: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    // v2
    org: Option<String>,
    bucket: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    unsigned: Option<bool>,
}

/// `deny_unknown_fields` does not combine with `flatten`: the common keys are taken out of
/// the table first and parsed on their own, so typos are still caught on both sides.
const COMMON_KEYS: &[&str] = &[
    "name",
    "url",
    "interval",
    "timeout",
    "batch_size",
    "batch_bytes",
    "queue_max_bytes",
    "spool_dir",
    "spool_max_bytes",
    "gzip",
    "ca_file",
    "host",
    "host_env",
];

/// Parses `[[sinks]]` tables; `exposition` is /metrics' (the remote-write sink pushes the
/// same series). Errors name the key as `sinks[N].key`.
pub fn parse(tables: &[toml::Table], exposition: &Options) -> Result<Vec<SinkSpec>> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let bad = |k: &str, r: String| Error::new(format!("sinks[{i}].{k}"), r);
        // The checks below name the key within the sink.
        let within = |e: Error| bad(&e.key, e.reason);
        let kind = t
            .get("type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("type", format!("missing; one of {TYPES}")))?
            .to_string();
        let mut common_t = toml::Table::new();
        let mut rest = toml::Table::new();
        for (k, v) in t {
            if k == "type" {
                continue;
            }
            if COMMON_KEYS.contains(&k.as_str()) {
                common_t.insert(k.clone(), v.clone());
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        let common: Common = common_t
            .try_into()
            .map_err(|e: toml::de::Error| bad("", one_line(e.message())))?;
        let runner = runner_config(&common, &kind, i).map_err(within)?;
        let name = runner.name.clone();
        let spec = match kind.as_str() {
            "influxdb" => {
                let f: InfluxFile = rest
                    .try_into()
                    .map_err(|e: toml::de::Error| bad("", one_line(e.message())))?;
                SinkKind::Influx(influx(&common, f).map_err(within)?)
            }
            "elasticsearch" => {
                let f: ElasticFile = rest
                    .try_into()
                    .map_err(|e: toml::de::Error| bad("", one_line(e.message())))?;
                SinkKind::Elastic(elastic_config(&common, f).map_err(within)?)
            }
            "remote_write" => {
                let f: RemoteWriteFile = rest
                    .try_into()
                    .map_err(|e: toml::de::Error| bad("", one_line(e.message())))?;
                SinkKind::RemoteWrite(remote_write_config(&common, f, exposition).map_err(within)?)
            }
            other => return Err(bad("type", format!("{other:?} is not one of {TYPES}"))),
        };
        if out.iter().any(|s: &SinkSpec| s.name == name) {
            return Err(bad("name", format!("{name:?} is used by two sinks")));
        }
        out.push(SinkSpec {
            name,
            kind: spec,
            runner,
        });
    }
    Ok(out)
}

fn runner_config(c: &Common, kind: &str, i: usize) -> Result<RunnerConfig> {
    let mut r = RunnerConfig {
        name: c.name.clone().unwrap_or_else(|| format!("{kind}-{i}")),
        ..RunnerConfig::default()
    };
    let dur = |key: &'static str, v: &Option<String>| -> Result<Option<Duration>> {
        v.as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| Error::new(key, e))
    };
    if let Some(d) = dur("interval", &c.interval)? {
        if d < Duration::from_millis(100) {
            return Err(Error::new("interval", "must be at least 100ms"));
        }
        r.interval = d;
    }
    if let Some(d) = dur("timeout", &c.timeout)? {
        if d.is_zero() {
            return Err(Error::new("timeout", "must be more than 0"));
        }
        r.timeout = d;
    }
    if let Some(n) = c.batch_size {
        if n == 0 {
            return Err(Error::new("batch_size", "must be at least 1"));
        }
        r.batch_items = n;
    }
    if let Some(n) = c.batch_bytes {
        r.batch_bytes = n.max(1024);
    }
    if let Some(n) = c.queue_max_bytes {
        r.queue_bytes = n;
    }
    r.spool_dir = c.spool_dir.clone();
    if let Some(n) = c.spool_max_bytes {
        if n < 1 << 20 {
            return Err(Error::new("spool_max_bytes", "must be at least 1 MiB"));
        }
        r.spool_bytes = n;
    }
    Ok(r)
}

/// The host name the sink writes: `host`, or the variable `host_env` names, or neither (the
/// machine's host name).
fn host(c: &Common) -> Result<Option<String>> {
    match (&c.host, &c.host_env) {
        (Some(_), Some(_)) => Err(Error::new("host", "give only one of host, host_env")),
        (h, None) => Ok(h.clone()),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(Error::new(
                "host_env",
                format!("the environment variable {var} is not set"),
            )),
        },
    }
}

/// One secret from exactly one of: inline, `<key>_env`, `<key>_file`.
fn secret(
    key: &'static str,
    inline: &Option<String>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>> {
    match (inline, env, file) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(Secret(v.clone()))),
        (None, Some(var), None) => std::env::var(var)
            .map(|v| Some(Secret(v)))
            .map_err(|_| Error::new(key, format!("environment variable {var:?} is not set"))),
        (None, None, Some(p)) => std::fs::read_to_string(p)
            .map(|v| Some(Secret(v.strip_suffix('\n').unwrap_or(&v).to_string())))
            .map_err(|e| Error::new(key, format!("reading {}: {e}", p.display()))),
        _ => Err(Error::new(
            key,
            format!("give only one of {key}, {key}_env, {key}_file"),
        )),
    }
}

fn influx(c: &Common, f: InfluxFile) -> Result<InfluxConfig> {
    let api = match (&f.database, &f.org, &f.bucket) {
        (Some(db), None, None) => Api::V1 {
            database: db.clone(),
            retention_policy: f.retention_policy.clone(),
            username: f.username.clone(),
            password: secret("password", &f.password, &f.password_env, &f.password_file)?,
        },
        (None, Some(org), Some(bucket)) => Api::V2 {
            org: org.clone(),
            bucket: bucket.clone(),
            token: secret("token", &f.token, &f.token_env, &f.token_file)?.ok_or_else(|| {
                Error::new("token", "the v2 API needs token, token_env or token_file")
            })?,
        },
        _ => {
            return Err(Error::new(
                "database",
                "give `database` (v1 API) or both `org` and `bucket` (v2 API)",
            ))
        }
    };
    let mut cfg = InfluxConfig::new(c.url.clone(), api);
    cfg.host = host(c)?;
    cfg.unsigned = f.unsigned.unwrap_or(false);
    cfg.gzip = c.gzip.unwrap_or(true);
    cfg.ca_file = c.ca_file.clone();
    if let Some(t) = &c.timeout {
        cfg.timeout = parse_duration(t).map_err(|e| Error::new("timeout", e))?;
    }
    // Fail at start, not at the first push: bad URL, unreadable CA.
    InfluxSink::new(cfg.clone()).map_err(|e| Error::new("url", e.to_string()))?;
    Ok(cfg)
}

fn elastic_config(c: &Common, f: ElasticFile) -> Result<ElasticConfig> {
    let mut cfg = ElasticConfig::new(c.url.clone());
    cfg.target = match (f.data_stream, f.index) {
        (Some(_), Some(_)) => {
            return Err(Error::new("index", "give data_stream or index, not both"))
        }
        (Some(ds), None) => elastic::Target::DataStream(ds),
        (None, Some(pattern)) => elastic::Target::Indices(pattern),
        (None, None) => cfg.target,
    };
    let password = secret("password", &f.password, &f.password_env, &f.password_file)?;
    let api_key = secret("api_key", &f.api_key, &f.api_key_env, &f.api_key_file)?;
    cfg.auth = match (f.username, password, api_key) {
        (None, None, None) => elastic::Auth::None,
        (Some(username), password, None) => elastic::Auth::Basic {
            username,
            password: elastic::Secret(password.map(|p| p.0).unwrap_or_default()),
        },
        (None, None, Some(k)) => elastic::Auth::ApiKey(elastic::Secret(k.0)),
        (None, Some(_), None) => return Err(Error::new("username", "a password needs a username")),
        _ => {
            return Err(Error::new(
                "api_key",
                "give username/password or api_key, not both",
            ))
        }
    };
    if let Some(b) = f.template {
        cfg.template.install = b;
    }
    if let Some(n) = f.template_name {
        cfg.template.name = Some(n);
    }
    if let Some(b) = f.template_overwrite {
        cfg.template.overwrite = b;
    }
    if let Some(p) = f.template_priority {
        cfg.template.priority = p;
    }
    cfg.host = host(c)?;
    cfg.gzip = c.gzip.unwrap_or(true);
    cfg.ca_file = c.ca_file.clone();
    if let Some(t) = &c.timeout {
        cfg.timeout = parse_duration(t).map_err(|e| Error::new("timeout", e))?;
    }
    ElasticSink::new(cfg.clone()).map_err(|e| Error::new("url", e.to_string()))?;
    Ok(cfg)
}

/// `${NAME}` replaced by the environment variable's value; an unset one is an error.
fn expand_env(key: &str, text: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::new(key, format!("{text:?}: ${{ without }}")))?;
        let var = &after[..end];
        let value = std::env::var(var)
            .map_err(|_| Error::new(key, format!("environment variable {var:?} is not set")))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn remote_write_config(
    c: &Common,
    f: RemoteWriteFile,
    exposition: &Options,
) -> Result<RemoteWriteConfig> {
    if c.gzip.is_some() {
        return Err(Error::new(
            "gzip",
            "remote write is always snappy-compressed",
        ));
    }
    for (key, given) in [
        ("host", c.host.is_some()),
        ("host_env", c.host_env.is_some()),
    ] {
        if given {
            return Err(Error::new(
                key,
                "remote_write labels series with external_labels (instance = \"${NODE_NAME}\", say)",
            ));
        }
    }
    let mut cfg = RemoteWriteConfig::new(c.url.clone());
    for (name, value) in f.external_labels.unwrap_or_default() {
        let key = format!("external_labels.{name}");
        let value = expand_env(&key, &value)?;
        remote_write::check_label_name(&name).map_err(|r| Error::new(key.as_str(), r))?;
        if value.is_empty() {
            return Err(Error::new(key, "empty value"));
        }
        cfg.external_labels.push((name, value));
    }
    cfg.headers = f.headers.unwrap_or_default().into_iter().collect();
    let password = secret("password", &f.password, &f.password_env, &f.password_file)?;
    let bearer = secret(
        "bearer_token",
        &f.bearer_token,
        &f.bearer_token_env,
        &f.bearer_token_file,
    )?;
    cfg.auth = match (f.username, password, bearer) {
        (None, None, None) => remote_write::Auth::None,
        (Some(username), password, None) => remote_write::Auth::Basic {
            username,
            password: password.unwrap_or_default(),
        },
        (None, None, Some(t)) => remote_write::Auth::Bearer(t),
        (None, Some(_), None) => return Err(Error::new("username", "a password needs a username")),
        _ => {
            return Err(Error::new(
                "bearer_token",
                "give username/password or bearer_token, not both",
            ))
        }
    };
    cfg.tls = remote_write::Tls {
        ca_file: c.ca_file.clone(),
        cert_file: f.tls_cert_file,
        key_file: f.tls_key_file,
        insecure_skip_verify: f.tls_insecure_skip_verify.unwrap_or(false),
    };
    if let Some(t) = &c.timeout {
        cfg.timeout = parse_duration(t).map_err(|e| Error::new("timeout", e))?;
    }
    cfg.options = exposition.clone();
    cfg.user_agent = concat!("collector-exporter/", env!("CARGO_PKG_VERSION")).into();
    // Fail at start, not at the first push: bad URL, header or label, unreadable files.
    RemoteWriteSink::new(cfg.clone()).map_err(|e| {
        let key = match &e {
            collector_core::Error::Invalid { what: "header", .. } => "headers",
            collector_core::Error::Invalid {
                what: "external label",
                ..
            } => "external_labels",
            collector_core::Error::Invalid { .. } => "url",
            _ => "tls",
        };
        Error::new(key, e.to_string())
    })?;
    Ok(cfg)
}

/// A running sink, for feeding and for its counters.
pub struct Running {
    pub name: String,
    pub kind: &'static str,
    pub handle: SinkHandle,
}

impl Running {
    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.handle.stats
    }
}

/// Starts every sink on the current tokio runtime; `own` is what a remote-write sink pushes
/// beside the snapshot's series (the exporter's own).
pub fn start(
    specs: &[SinkSpec],
    own: Option<remote_write::ExtraSeries>,
) -> anyhow::Result<Vec<Running>> {
    let mut out = Vec::new();
    for s in specs {
        let handle = match &s.kind {
            SinkKind::Influx(cfg) => {
                SinkRunner::spawn(InfluxSink::new(cfg.clone())?, s.runner.clone())
            }
            SinkKind::Elastic(cfg) => {
                SinkRunner::spawn(ElasticSink::new(cfg.clone())?, s.runner.clone())
            }
            SinkKind::RemoteWrite(cfg) => {
                let cfg = RemoteWriteConfig {
                    extra: own.clone(),
                    ..cfg.clone()
                };
                SinkRunner::spawn(RemoteWriteSink::new(cfg)?, s.runner.clone())
            }
        }
        .map_err(|e| {
            let dir = s.runner.spool_dir.as_deref().unwrap_or(Path::new("?"));
            anyhow::anyhow!("sink {}: opening its spool {}: {e}", s.name, dir.display())
        })?;
        tracing::info!(sink = %s.name, kind = s.kind.type_name(), interval = ?s.runner.interval, spool = ?s.runner.spool_dir, "sink started");
        out.push(Running {
            name: s.name.clone(),
            kind: s.kind.type_name(),
            handle,
        });
    }
    Ok(out)
}

/// Asks a configured sink's server whether it would take a delivery (`Sink::probe`), storing
/// nothing; for `collector-exporter check`.
pub async fn probe(s: &SinkSpec) -> Result<String, String> {
    use collector_core::sink::Sink;
    match &s.kind {
        SinkKind::Influx(cfg) => match InfluxSink::new(cfg.clone()) {
            Ok(mut sink) => sink.probe().await,
            Err(e) => Err(e.to_string()),
        },
        SinkKind::Elastic(cfg) => match ElasticSink::new(cfg.clone()) {
            Ok(mut sink) => sink.probe().await,
            Err(e) => Err(e.to_string()),
        },
        SinkKind::RemoteWrite(cfg) => match RemoteWriteSink::new(cfg.clone()) {
            Ok(mut sink) => sink.probe().await,
            Err(e) => Err(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(text: &str) -> Vec<toml::Table> {
        #[derive(Deserialize)]
        struct F {
            sinks: Vec<toml::Table>,
        }
        toml::from_str::<F>(text).unwrap().sinks
    }

    #[test]
    fn the_host_from_an_environment_variable() {
        std::env::set_var("CCOL_TEST_NODE", "node-7");
        let specs = parse(&tables(
            "[[sinks]]\ntype = \"influxdb\"\nurl = \"http://127.0.0.1:8086\"\ndatabase = \"k\"\nhost_env = \"CCOL_TEST_NODE\"\n",
        ), &Options::default())
        .expect("a sink");
        let SinkKind::Influx(cfg) = &specs[0].kind else {
            panic!("{specs:?}")
        };
        assert_eq!(cfg.host.as_deref(), Some("node-7"));
        let e = parse(&tables(
            "[[sinks]]\ntype = \"elasticsearch\"\nurl = \"http://x\"\nhost_env = \"CCOL_TEST_UNSET_VAR\"\n",
        ), &Options::default())
        .unwrap_err();
        assert_eq!(e.key, "sinks[0].host_env");
        assert!(e.reason.contains("CCOL_TEST_UNSET_VAR"), "{e:?}");
    }

    #[test]
    fn influx_v1_and_v2_with_secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, "s3cret\n").unwrap();
        std::env::set_var("CCOL_TEST_PW", "pw");
        let text = format!(
            "[[sinks]]\ntype = \"influxdb\"\nurl = \"http://127.0.0.1:8086\"\ndatabase = \"k\"\nusername = \"u\"\npassword_env = \"CCOL_TEST_PW\"\ninterval = \"1s\"\nspool_dir = \"/tmp/x\"\n\
             [[sinks]]\ntype = \"influxdb\"\nname = \"v2\"\nurl = \"http://127.0.0.1:8087\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"{}\"\n",
            tok.display()
        );
        let specs = parse(&tables(&text), &Options::default()).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "influxdb-0");
        assert_eq!(specs[0].runner.interval, Duration::from_secs(1));
        assert_eq!(
            specs[0].runner.spool_dir.as_deref(),
            Some(std::path::Path::new("/tmp/x"))
        );
        let SinkKind::Influx(c) = &specs[1].kind else {
            panic!("not influx")
        };
        assert_eq!(
            c.api,
            Api::V2 {
                org: "o".into(),
                bucket: "b".into(),
                token: Secret("s3cret".into())
            }
        );
        // Secrets do not show in Debug output (and so not in logs).
        let dbg = format!("{specs:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("\"pw\""), "{dbg}");
    }

    #[test]
    fn remote_write_with_labels_from_env_headers_and_bearer_token() {
        std::env::set_var("CCOL_TEST_NODE", "node-7");
        std::env::set_var("CCOL_TEST_BEARER", "b3arer");
        let text =
            "[[sinks]]\ntype = \"remote_write\"\nurl = \"http://127.0.0.1:9090/api/v1/write\"\n\
             interval = \"15s\"\nbearer_token_env = \"CCOL_TEST_BEARER\"\nspool_dir = \"/tmp/rw\"\n\
             [sinks.external_labels]\ninstance = \"${CCOL_TEST_NODE}\"\ncluster = \"c1\"\n\
             [sinks.headers]\nX-Scope-OrgID = \"t1\"\n";
        let exposition = Options {
            label_allowlist: vec!["app".into()],
        };
        let specs = parse(&tables(text), &exposition).unwrap();
        assert_eq!(specs[0].name, "remote_write-0");
        assert_eq!(specs[0].kind.type_name(), "remote_write");
        assert_eq!(specs[0].runner.interval, Duration::from_secs(15));
        let SinkKind::RemoteWrite(c) = &specs[0].kind else {
            panic!("not remote_write")
        };
        assert_eq!(
            c.external_labels,
            vec![
                ("cluster".to_string(), "c1".to_string()),
                ("instance".to_string(), "node-7".to_string())
            ]
        );
        assert_eq!(
            c.headers,
            vec![("X-Scope-OrgID".to_string(), "t1".to_string())]
        );
        assert_eq!(c.auth, remote_write::Auth::Bearer(Secret("b3arer".into())));
        assert_eq!(c.options, exposition);
        assert!(c.user_agent.starts_with("collector-exporter/"));
        assert!(!format!("{specs:?}").contains("b3arer"));
        let cases = [
            ("gzip = true", "sinks[0].gzip"),
            ("host = \"h\"", "sinks[0].host"),
            (
                "external_labels = { \"0x\" = \"a\" }",
                "sinks[0].external_labels.0x",
            ),
            (
                "external_labels = { x = \"${CCOL_TEST_UNSET_VAR}\" }",
                "sinks[0].external_labels.x",
            ),
            ("headers = { \"Content-Type\" = \"a\" }", "sinks[0].headers"),
            (
                "username = \"u\"\nbearer_token = \"t\"",
                "sinks[0].bearer_token",
            ),
            ("tls_cert_file = \"/nonexistent\"", "sinks[0].tls"),
            ("external_labels = 3", "sinks[0]."),
        ];
        for (body, key) in cases {
            let text = format!(
                "[[sinks]]\ntype = \"remote_write\"\nurl = \"http://127.0.0.1:9/w\"\n{body}\n"
            );
            let e = parse(&tables(&text), &exposition).unwrap_err();
            assert!(e.key.starts_with(key), "{body}: {e}");
        }
    }

    #[test]
    fn errors_name_the_sink_and_key() {
        let cases = [
            ("type = \"kafka\"\nurl = \"http://x\"", "sinks[0].type"),
            ("url = \"http://x\"", "sinks[0].type"),
            ("type = \"influxdb\"\nurl = \"http://x\"", "sinks[0].database"),
            ("type = \"influxdb\"\nurl = \"x:1\"\ndatabase = \"d\"", "sinks[0].url"),
            ("type = \"influxdb\"\nurl = \"http://x\"\ndatabase = \"d\"\ninterval = \"fast\"", "sinks[0].interval"),
            ("type = \"influxdb\"\nurl = \"http://x\"\norg = \"o\"\nbucket = \"b\"", "sinks[0].token"),
            ("type = \"influxdb\"\nurl = \"http://x\"\ndatabase = \"d\"\npassword = \"a\"\npassword_env = \"B\"", "sinks[0].password"),
            ("type = \"influxdb\"\nurl = \"http://x\"\ndatabase = \"d\"\ndatabse = \"typo\"", "sinks[0]."),
        ];
        for (body, key) in cases {
            let e = parse(
                &tables(&format!("[[sinks]]\n{body}\n")),
                &Options::default(),
            )
            .unwrap_err();
            assert!(e.key.starts_with(key), "{body}: {e}");
        }
    }
}
