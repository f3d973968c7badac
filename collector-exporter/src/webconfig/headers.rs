//! `http_server_config.headers`: the extra response headers a web config may set.

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};

use super::bad;
use crate::error::Result;

/// The headers a web config may set, with their allowed values (any when empty), as in the
/// exporter-toolkit.
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

pub(super) fn extra(h: BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>> {
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
