//! The file's shape: YAML, as the exporter-toolkit reads it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::bad;
use crate::error::{one_line, Result};

/// The file, checked for shape only; an empty file is an empty mapping.
pub(super) fn read(text: &str) -> Result<RawFile> {
    Ok(serde_norway::from_str::<Option<RawFile>>(text)
        .map_err(|e| bad("", one_line(&e.to_string())))?
        .unwrap_or_default())
}

// The file's shape. Every key is optional; an empty string counts as not given, as in Go.

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of tls_server_config, http_server_config, rate_limit, basic_auth_users"
)]
pub(super) struct RawFile {
    pub(super) tls_server_config: Option<RawTls>,
    pub(super) http_server_config: Option<RawHttp>,
    pub(super) rate_limit: Option<RawRateLimit>,
    /// Values kept raw so that no error message can echo one (it might be a password
    /// pasted where its hash belongs).
    pub(super) basic_auth_users: Option<BTreeMap<String, serde_norway::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of TLS settings")]
pub(super) struct RawTls {
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) client_ca: Option<String>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) curve_preferences: Option<Vec<String>>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of http2, headers")]
pub(super) struct RawHttp {
    pub(super) http2: Option<bool>,
    pub(super) headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of burst, interval")]
pub(super) struct RawRateLimit {
    pub(super) burst: Option<u32>,
    pub(super) interval: Option<String>,
}

/// The value unless it is empty, which counts as not given, as in Go.
pub(super) fn nonempty<T: AsRef<std::ffi::OsStr>>(v: Option<T>) -> Option<T> {
    v.filter(|s| !s.as_ref().is_empty())
}
