//! The built-in web page: three HTML pages, a stylesheet and a script, compiled into the
//! binary (no network at run time, no build step), served with an ETag, gzipped when the
//! client accepts it, and under a Content-Security-Policy that allows no inline script.
//! The pages fill themselves from the JSON API.

use std::sync::OnceLock;

use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

use crate::body::Body;

struct Asset {
    name: &'static str,
    body: &'static [u8],
    content_type: &'static str,
}

const ASSETS: [Asset; 6] = [
    Asset {
        name: "overview.html",
        body: include_bytes!("ui/assets/overview.html"),
        content_type: "text/html; charset=utf-8",
    },
    Asset {
        name: "container.html",
        body: include_bytes!("ui/assets/container.html"),
        content_type: "text/html; charset=utf-8",
    },
    Asset {
        name: "events.html",
        body: include_bytes!("ui/assets/events.html"),
        content_type: "text/html; charset=utf-8",
    },
    Asset {
        name: "app.css",
        body: include_bytes!("ui/assets/app.css"),
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        name: "app.js",
        body: include_bytes!("ui/assets/app.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "icon.svg",
        body: include_bytes!("ui/assets/icon.svg"),
        content_type: "image/svg+xml",
    },
];

/// Scripts and styles from this server only, data from its API only, nothing framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An asset with what is worked out once: its ETag and gzipped body.
struct Ready {
    etag: HeaderValue,
    gzipped: Vec<u8>,
}

fn ready() -> &'static [Ready] {
    static READY: OnceLock<Vec<Ready>> = OnceLock::new();
    READY.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                // FNV-1a: the ETag only has to change when the asset does.
                let hash = a.body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                let etag = HeaderValue::from_str(&format!("\"{hash:016x}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
                Ready {
                    etag,
                    gzipped: gzip(a.body),
                }
            })
            .collect()
    })
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(b);
    gz.finish().unwrap_or_default()
}

/// The asset a path of the page names: `/` (the overview), `/ui/events`,
/// `/ui/containers/{id}` (one page for any id: its script reads the id from the address)
/// `/ui/assets/{name}` and `/favicon.ico`.
pub fn route(path: &str) -> Option<usize> {
    let name = match path {
        "/" => "overview.html",
        "/ui/events" => "events.html",
        // Browsers ask for it whatever the page says.
        "/favicon.ico" => "icon.svg",
        _ if path.starts_with("/ui/containers/") => "container.html",
        _ => path.strip_prefix("/ui/assets/")?,
    };
    ASSETS.iter().position(|a| a.name == name)
}

/// Answers with asset `i` of [`route`]: 304 when the client has it, gzipped when accepted.
pub fn serve(i: usize, headers: &HeaderMap, gzip_ok: bool) -> Response<Body> {
    let (a, r) = (&ASSETS[i], &ready()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == r.etag.as_bytes());
    let mut resp = if fresh {
        let mut resp = Response::new(Body::whole(""));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else if gzip_ok {
        let mut resp = Response::new(Body::whole(r.gzipped.clone()));
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        resp
    } else {
        Response::new(Body::whole(a.body))
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::ETAG, r.etag.clone());
    // Behind basic auth: private; revalidated (a 304) at each load, so a new binary's
    // assets are never mixed with an old page.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// (name, bytes, gzipped bytes) of every asset, for the page weight the README gives.
pub fn weights() -> Vec<(&'static str, usize, usize)> {
    ASSETS
        .iter()
        .zip(ready())
        .map(|(a, r)| (a.name, a.body.len(), r.gzipped.len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let name = |p: &str| route(p).map(|i| ASSETS[i].name);
        assert_eq!(name("/"), Some("overview.html"));
        assert_eq!(name("/ui/events"), Some("events.html"));
        assert_eq!(
            name("/ui/containers/%2Fdocker%2Fabc"),
            Some("container.html")
        );
        assert_eq!(name("/ui/containers/docker/abc"), Some("container.html"));
        assert_eq!(name("/ui/assets/app.js"), Some("app.js"));
        assert_eq!(name("/ui/assets/../app.js"), None);
        assert_eq!(name("/ui/assets/nope.js"), None);
        assert_eq!(name("/ui/other"), None);
    }

    #[test]
    fn no_inline_script_and_the_page_weight() {
        for a in &ASSETS {
            let text = std::str::from_utf8(a.body).expect("utf-8 asset");
            if a.name.ends_with(".html") {
                assert!(!text.contains("<script>"), "{}: inline script", a.name);
                assert!(!text.contains(" style="), "{}: inline style", a.name);
                assert!(!text.contains("http"), "{}: a remote URL", a.name);
            }
            if a.name.ends_with(".js") {
                assert!(!text.contains("innerHTML"), "{}: HTML from strings", a.name);
            }
        }
        let total: usize = weights().iter().map(|w| w.2).sum();
        // The README states the weight; keep the page light.
        assert!(total < 40_000, "{:?}", weights());
        eprintln!("page weight: {:?}", weights());
    }
}
