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

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;

use crate::error::{one_line, Error, Result};

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

/// Where errors come from: a bad key (`key` dotted, `tls_server_config.cert_file`; empty when
/// the file as a whole is unreadable or not YAML of the right shape, the reason then naming
/// the key), never with a password or a key in the reason.
fn bad(key: &str, reason: impl Into<String>) -> Error {
    Error::new(key, reason)
}

/// The setting naming this file, said before its keys.
const SETTING: &str = "web.config.file";

// The file's shape. Every key is optional; an empty string counts as not given, as in Go.

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of tls_server_config, http_server_config, rate_limit, basic_auth_users"
)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    rate_limit: Option<RawRateLimit>,
    /// Values kept raw so that no error message can echo one (it might be a password
    /// pasted where its hash belongs).
    basic_auth_users: Option<BTreeMap<String, serde_norway::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of TLS settings")]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of http2, headers")]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of burst, interval")]
struct RawRateLimit {
    burst: Option<u32>,
    interval: Option<String>,
}

impl WebConfig {
    /// Reads and checks the file; relative file names in it are taken from its directory.
    pub fn load(path: &Path) -> Result<WebConfig> {
        let with_path = |e: Error| e.in_file(SETTING, path);
        let text = std::fs::read_to_string(path).map_err(|e| with_path(bad("", e.to_string())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).map_err(with_path)
    }

    fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
        let raw = serde_norway::from_str::<Option<RawFile>>(text)
            .map_err(|e| bad("", one_line(&e.to_string())))?
            .unwrap_or_default();
        let (tls, client_auth) = match raw.tls_server_config {
            Some(t) => tls_config(t, dir)?,
            None => (None, ClientAuth::None),
        };
        let headers = match raw.http_server_config {
            Some(h) => {
                // HTTP/2 on or off: either way this server answers HTTP/1.1, which every
                // Prometheus speaks, so the key is accepted for files shared with Go exporters.
                let _ = h.http2;
                extra_headers(h.headers.unwrap_or_default())?
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

fn nonempty<T: AsRef<std::ffi::OsStr>>(v: Option<T>) -> Option<T> {
    v.filter(|s| !s.as_ref().is_empty())
}

// ---- TLS ----

const K_TLS: &str = "tls_server_config";

fn key_of(field: &str) -> String {
    format!("{K_TLS}.{field}")
}

/// PEM text from exactly one of `inline` and `file`, or `None` when neither is given.
fn pem_source(
    inline: Option<String>,
    file: Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
) -> Result<Option<(Vec<u8>, String)>> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err(bad(
            &key_of(file_key),
            format!("give only one of {file_key} and {inline_key}"),
        )),
        (Some(text), None) => Ok(Some((text.into_bytes(), key_of(inline_key)))),
        (None, Some(p)) => {
            let p = dir.join(p);
            let bytes = std::fs::read(&p).map_err(|e| {
                bad(
                    &key_of(file_key),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Ok(Some((bytes, key_of(file_key))))
        }
        (None, None) => Ok(None),
    }
}

/// Why PEM did not parse, without echoing any of the file (a key file's lines are secret).
fn pem_reason(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => format!("no {what} found in the PEM"),
        E::MissingSectionEnd { .. } => "malformed PEM: a section has no END line".into(),
        E::IllegalSectionStart { .. } => "malformed PEM: bad BEGIN line".into(),
        E::Base64Decode(_) => "malformed PEM: bad base64".into(),
        E::SectionTooLarge => "malformed PEM: section too large".into(),
        _ => "malformed PEM".into(),
    }
}

fn certificates(pem: &[u8], key: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, pem_reason(&e, what)))?;
    if certs.is_empty() {
        return Err(bad(key, format!("no {what} (BEGIN CERTIFICATE) found")));
    }
    Ok(certs)
}

fn version(v: Option<String>, key: &str) -> Result<Option<u8>> {
    match nonempty(v).as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(2)),
        Some("TLS13") => Ok(Some(3)),
        Some(v @ ("TLS10" | "TLS11")) => Err(bad(
            &key_of(key),
            format!("{v} is not supported (too old); use TLS12 or TLS13"),
        )),
        Some(v) => Err(bad(
            &key_of(key),
            format!("{v:?} is not a TLS version (TLS12 or TLS13)"),
        )),
    }
}

/// The TLS 1.3 suites under Go's names: always on, as in Go, so naming one is a no-op.
const GO_TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

fn tls_config(t: RawTls, dir: &Path) -> Result<(Option<Arc<ServerConfig>>, ClientAuth)> {
    let auth_type = nonempty(t.client_auth_type);
    let enabled = [&t.cert, &t.key, &t.client_ca]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        || [&t.cert_file, &t.key_file, &t.client_ca_file]
            .iter()
            .any(|v| v.as_ref().is_some_and(|p| !p.as_os_str().is_empty()))
        || auth_type.is_some();
    if !enabled {
        // The exporter-toolkit serves plain HTTP for a TLS section without any of these.
        return Ok((None, ClientAuth::None));
    }
    if t.client_allowed_sans.is_some_and(|s| !s.is_empty()) {
        return Err(bad(
            &key_of("client_allowed_sans"),
            "not supported by this exporter; issue client certificates from a dedicated CA instead",
        ));
    }
    let (cert_pem, cert_key) = pem_source(t.cert, t.cert_file, "cert", "cert_file", dir)?
        .ok_or_else(|| bad(&key_of("cert_file"), "missing one of cert or cert_file"))?;
    let (key_pem, key_key) = pem_source(t.key, t.key_file, "key", "key_file", dir)?
        .ok_or_else(|| bad(&key_of("key_file"), "missing one of key or key_file"))?;
    let ca = pem_source(
        t.client_ca,
        t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;

    let certs = certificates(&cert_pem, &cert_key, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        bad(
            &key_key,
            pem_reason(&e, "private key (PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;

    let client_auth = match auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(v @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            return Err(bad(
                &key_of("client_auth_type"),
                format!(
                    "{v} (client certificates not checked against a CA) is not supported; \
                     use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file"
                ),
            ))
        }
        Some(v) => {
            return Err(bad(
                &key_of("client_auth_type"),
                format!(
                    "{v:?} is not one of NoClientCert, VerifyClientCertIfGiven, \
                     RequireAndVerifyClientCert"
                ),
            ))
        }
    };
    let roots = match (client_auth, ca) {
        (ClientAuth::None, Some((_, k))) => {
            return Err(bad(
                &k,
                "client CAs are configured but client_auth_type is NoClientCert; set \
                 client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven",
            ))
        }
        (ClientAuth::None, None) => None,
        (_, None) => {
            return Err(bad(
                &key_of("client_ca_file"),
                "client_auth_type verifies client certificates, so it needs client_ca_file \
                 (or client_ca)",
            ))
        }
        (_, Some((pem, k))) => {
            let mut roots = RootCertStore::empty();
            let (added, _) =
                roots.add_parsable_certificates(certificates(&pem, &k, "CA certificate")?);
            if added == 0 {
                return Err(bad(
                    &k,
                    "none of its certificates is a usable CA certificate",
                ));
            }
            Some(roots)
        }
    };

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.filter(|n| !n.is_empty()) {
        let mut keep = Vec::new();
        for name in &names {
            if GO_TLS13_SUITES.contains(&name.as_str()) {
                continue;
            }
            match provider.cipher_suites.iter().find(|s| {
                s.suite().as_str() == Some(name.as_str()) && s.version() == &rustls::version::TLS12
            }) {
                Some(s) => keep.push(*s),
                None => {
                    let known: Vec<_> = provider
                        .cipher_suites
                        .iter()
                        .filter(|s| s.version() == &rustls::version::TLS12)
                        .filter_map(|s| s.suite().as_str())
                        .collect();
                    return Err(bad(
                        &key_of("cipher_suites"),
                        format!(
                            "{name:?} is not supported; the TLS 1.2 suites are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        // TLS 1.3 suites are not configurable, as in Go; TLS 1.2 ones in the order given.
        let tls13 = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied();
        provider.cipher_suites = tls13.chain(keep).collect();
    }
    if let Some(names) = t.curve_preferences.filter(|n| !n.is_empty()) {
        let mut groups = Vec::new();
        for name in &names {
            let want = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                other => {
                    return Err(bad(
                        &key_of("curve_preferences"),
                        format!("{other:?} is not supported (X25519, CurveP256, CurveP384)"),
                    ))
                }
            };
            if let Some(g) = provider.kx_groups.iter().find(|g| g.name() == want) {
                groups.push(*g);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let min = version(t.min_version, "min_version")?.unwrap_or(2);
    let max = version(t.max_version, "max_version")?.unwrap_or(3);
    if min > max {
        return Err(bad(&key_of("min_version"), "is above max_version"));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(3, &rustls::version::TLS13), (2, &rustls::version::TLS12)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            bad(
                K_TLS,
                format!("no usable cipher suite for the TLS versions: {e}"),
            )
        })?;
    let builder = match roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if client_auth == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| bad(&key_of("client_ca_file"), e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            &key_key,
            format!("does not go with the certificate in {cert_key}: {e}"),
        )
    })?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Some(Arc::new(config)), client_auth))
}

// ---- HTTP headers and rate limit ----

/// The headers a web config may set, with their allowed values (any when empty), as in the
/// exporter-toolkit.
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn extra_headers(h: BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for (name, value) in h {
        let key = format!("http_server_config.headers.{name}");
        let Some((canonical, allowed)) = EXTRA_HEADERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<_> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(bad(
                &key,
                format!(
                    "this header cannot be configured (only {})",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            return Err(bad(
                &key,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            ));
        }
        let v = HeaderValue::from_str(&value).map_err(|_| bad(&key, "not a valid header value"))?;
        let name = HeaderName::from_bytes(canonical.as_bytes()).expect("a valid header name");
        out.push((name, v));
    }
    Ok(out)
}

/// A token bucket: `burst` requests at once, refilled by one each `interval`.
pub struct RateLimiter {
    burst: f64,
    interval: Duration,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn from_raw(r: RawRateLimit) -> Result<Option<RateLimiter>> {
        let interval = match nonempty(r.interval) {
            None => return Ok(None),
            Some(text) => crate::value::parse_duration(&text)
                .map_err(|reason| bad("rate_limit.interval", reason))?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = r.burst.unwrap_or(0);
        if burst == 0 {
            return Err(bad(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.interval is set (0 refuses every request)",
            ));
        }
        Ok(Some(RateLimiter::new(burst, interval)))
    }

    pub fn new(burst: u32, interval: Duration) -> RateLimiter {
        RateLimiter {
            burst: burst as f64,
            interval,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

// ---- basic auth ----

/// Successful (user, password) checks remembered, so that a scraper's every request does not
/// pay for bcrypt; only keyed hashes are kept, never a password.
const CACHE_CAPACITY: usize = 256;

pub struct BasicAuth {
    /// (user, bcrypt hash), in file order.
    users: Vec<(String, String)>,
    /// The costliest user's hash with its hash part blanked: checked for unknown users, so
    /// that their answer takes as long as a known user's, and never a match (nor taken as
    /// one: an unknown user is refused whatever bcrypt says).
    decoy: String,
    cache_key: ring::hmac::Key,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time: each is 50-400 ms of CPU at cost 10, and a flood of wrong
    /// passwords should not take every core (the exporter-toolkit does the same).
    gate: tokio::sync::Semaphore,
    bcrypt_runs: AtomicU64,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, serde_norway::Value>) -> Result<BasicAuth> {
        let mut out = Vec::with_capacity(users.len());
        let mut costliest: Option<(u32, &str)> = None;
        for (user, value) in users {
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() {
                return Err(bad("basic_auth_users", "a user name is empty"));
            }
            if user.contains(':') {
                return Err(bad(
                    &key,
                    "a user name cannot contain ':' in HTTP basic auth",
                ));
            }
            let serde_norway::Value::String(hash) = value else {
                return Err(bad(&key, "must be a bcrypt hash string"));
            };
            let cost = bcrypt_cost(&hash).ok_or_else(|| {
                bad(
                    &key,
                    "not a bcrypt hash (60 characters: $2a$, $2b$ or $2y$, a cost of 04-31, \
                     then salt and hash; make one with `htpasswd -nBC 10 USER`)",
                )
            })?;
            out.push((user, hash, cost));
        }
        for (_, hash, cost) in &out {
            if costliest.is_none_or(|(c, _)| *cost > c) {
                costliest = Some((*cost, hash));
            }
        }
        // `$2b$10$` and 22 characters of salt, then 31 of hash: '.' is 0 in bcrypt's base64.
        let decoy = match costliest {
            Some((_, hash)) => format!("{}{}", &hash[..29], ".".repeat(31)),
            None => return Err(bad("basic_auth_users", "no users")),
        };
        let out = out.into_iter().map(|(u, h, _)| (u, h)).collect();
        let rng = ring::rand::SystemRandom::new();
        let cache_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| bad("basic_auth_users", "no randomness for the credential cache"))?;
        Ok(BasicAuth {
            users: out,
            decoy,
            cache_key,
            cache: Mutex::new(HashSet::new()),
            gate: tokio::sync::Semaphore::new(1),
            bcrypt_runs: AtomicU64::new(0),
        })
    }

    /// How many bcrypt verifications have run (the cache keeps this low).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// Whether an `Authorization` header value names a user with the right password.
    pub async fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let stored = self.lookup(&user);
        let hash = stored.unwrap_or(&self.decoy);
        let tag = self.tag(&user, hash, &pass);
        if stored.is_some() && self.lock_cache().contains(&tag) {
            return true;
        }
        let verified = {
            let _permit = self.gate.acquire().await;
            self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            let hash = hash.to_string();
            tokio::task::spawn_blocking(move || bcrypt::verify(&pass, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let ok = verified && stored.is_some();
        if ok {
            let mut cache = self.lock_cache();
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(tag);
        }
        ok
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's hash, comparing every name without stopping early.
    fn lookup(&self, user: &[u8]) -> Option<&str> {
        let mut found = None;
        for (u, h) in &self.users {
            if ct_eq(u.as_bytes(), user) {
                found = Some(h.as_str());
            }
        }
        found
    }

    fn tag(&self, user: &[u8], hash: &str, pass: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.cache_key);
        for part in [user, hash.as_bytes(), pass] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// Equal bytes, in time that depends on the length only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `Basic base64(user:password)` into its two parts.
fn parse_basic(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The cost of a well-formed `$2a$`/`$2b$`/`$2y$` hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let b = hash.as_bytes();
    if b.len() != 60 || !hash.is_ascii() || !matches!(&hash[..4], "$2a$" | "$2b$" | "$2y$") {
        return None;
    }
    if b[6] != b'$' || !b[4].is_ascii_digit() || !b[5].is_ascii_digit() {
        return None;
    }
    let cost: u32 = hash[4..6].parse().ok()?;
    if !(4..=31).contains(&cost) {
        return None;
    }
    hash.parse::<bcrypt::HashParts>().ok()?;
    Some(cost)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic(&header("a", "b:c")),
            Some((b"a".to_vec(), b"b:c".to_vec()))
        );
        assert_eq!(
            parse_basic(b"basic YTpi"),
            Some((b"a".to_vec(), b"b".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer YTpi"), None);
        assert_eq!(parse_basic(b"Basic !!"), None);
        assert_eq!(parse_basic(b"Basic YWI="), None); // "ab": no colon
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
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
