//! The HTTP side: `/metrics`, `/healthz`, the JSON API and the web page (`ui`). Every handler
//! reads the latest cached snapshot; only a container's process list reads procfs, on a
//! blocking thread.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use collector_core::prometheus::{self as prom, Format, Options};
use collector_core::{Container, Hierarchy, Roots, Snapshot};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use crate::body::Body;
use crate::body::Piece;
use crate::selfmetrics::{SelfCollector, SweepStats};
use crate::state::Latest;
use crate::views;

pub struct App {
    pub latest: Arc<Latest>,
    pub stats: Arc<SweepStats>,
    /// (name, type, counters) of each push sink.
    pub sinks: Vec<(String, &'static str, Arc<collector_core::sink::SinkStats>)>,
    pub runtimes: Option<Arc<collector_core::runtime::Providers>>,
    pub events: Arc<crate::state::EventLog>,
    pub violations: Arc<crate::state::Violations>,
    pub criticals: Arc<crate::state::Criticals>,
    pub options: Arc<Options>,
    pub telemetry_path: String,
    pub interval: Duration,
    pub procfs: Arc<ProcSource>,
    /// What the agent can see (`collector_setup_info`); `None` in tests that build an App.
    pub setup: Option<Arc<crate::setup::SetupInfo>>,
    /// `/healthz` answered without basic auth (`--web.healthz-without-auth`).
    pub healthz_without_auth: bool,
    /// The connections served, within `--web.max-connections`.
    pub connections: Arc<crate::connections::Connections>,
    /// The web page's recent figures (`--web.ui-history`).
    pub history: crate::views::SharedHistory,
    /// The latest sweep's `/metrics` bodies, shared by the scrapes of that sweep.
    pub shared_bodies: crate::shared_body::SharedBodies,
}

/// Where `/api/v1/containers/{id}/processes` reads a container's processes from.
#[derive(Debug, Clone)]
pub struct ProcSource {
    pub roots: Roots,
    pub hierarchy: Hierarchy,
    /// The host's `/` (`--path.rootfs`), for user names from its `etc/passwd`.
    pub rootfs: std::path::PathBuf,
}

type Resp = Response<Body>;

pub async fn handle(
    app: Arc<App>,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n"));
    }
    let path = req.uri().path();
    let resp = if path == app.telemetry_path {
        metrics(&app, &req)
    } else if path == "/healthz" {
        healthz(&app)
    } else if path == "/api/v1/containers" {
        match app.latest.get() {
            Some(s) => json(&s.containers.iter().map(Summary::of).collect::<Vec<_>>()),
            None => not_ready(),
        }
    } else if path == "/api/v1/events" {
        json(&app.events.recent())
    } else if path == "/api/v1/connections" {
        match app.latest.get() {
            Some(s) => json(&Connections::of(&s)),
            None => not_ready(),
        }
    } else if path == "/api/v1/machine" {
        match app.latest.get() {
            Some(s) => {
                let m = views::Machine::of(&s, &views::lock(&app.history), interval_ms(&app));
                json(&m)
            }
            None => not_ready(),
        }
    } else if path == "/api/v1/overview" {
        match app.latest.get() {
            Some(s) => {
                // Written out after the history's lock is let go: the sweep thread waits on it.
                let o = views::Overview::of(&s, &views::lock(&app.history), interval_ms(&app));
                json(&o)
            }
            None => not_ready(),
        }
    } else if let Some(rest) = path.strip_prefix("/api/v1/containers/") {
        match sub_resource(&app, rest) {
            Some((key, "processes")) => processes(&app, key).await,
            Some((key, _)) => history(&app, key),
            None => container(&app, rest),
        }
    } else if path == "/ui/metrics" {
        // The page's link to the metrics, wherever `--web.telemetry-path` put them.
        let mut r = text(StatusCode::FOUND, "");
        match HeaderValue::from_str(&app.telemetry_path) {
            Ok(to) => {
                r.headers_mut().insert(header::LOCATION, to);
                r
            }
            Err(_) => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    } else if let Some(page) = crate::ui::route(path) {
        crate::ui::serve(page, req.headers(), wants_gzip(&req))
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    };
    Ok(if wants_gzip(&req) {
        gzip_json(resp)
    } else {
        resp
    })
}

fn wants_gzip(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip)
}

/// JSON answers above this size go gzipped to a client that accepts it: the overview the page
/// polls each sweep is about 600 KB at 1,000 containers, 45 KB gzipped (the ui_history bench).
const GZIP_JSON_OVER: usize = 8 * 1024;

fn gzip_json(mut resp: Resp) -> Resp {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    let Body::Whole(Some(body)) = resp.body() else {
        return resp;
    };
    if !is_json || body.len() <= GZIP_JSON_OVER {
        return resp;
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    let Ok(zipped) = gz.write_all(body).and_then(|()| gz.finish()) else {
        return resp;
    };
    *resp.body_mut() = Body::whole(zipped);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    resp
}

/// The text goes to the client in pieces of about this size (gzipped, when asked, before it
/// goes): the body of 10,000 containers is 80 MB of text, which is never held whole.
pub const PIECE: usize = 64 * 1024;

/// `/metrics`: written on a blocking thread while it is sent, so the server's one runtime
/// thread stays free for other requests and the sinks.
fn metrics(app: &Arc<App>, req: &Request<hyper::body::Incoming>) -> Resp {
    let Some(snap) = app.latest.get() else {
        return not_ready();
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let gzip = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let (tx, body) = Body::pieces(2);
    // A HEAD takes no body: written apart, its writer stops at the first piece.
    let head = req.method() == hyper::Method::HEAD;
    if !head && (gzip || app.shared_bodies.share_plain()) {
        // Made once for the sweep, shared by every scrape of it.
        let (shared, write) = app.shared_bodies.get(&snap, format, gzip);
        if write {
            let (app, shared) = (app.clone(), shared.clone());
            tokio::task::spawn_blocking(move || {
                let mut bytes = 0u64;
                let ok = write_metrics(&app, &snap, format, gzip, |b| {
                    bytes += b.len() as u64;
                    shared.push(b);
                    Ok(())
                });
                if !gzip && ok.is_ok() {
                    app.shared_bodies.plain_written(bytes);
                }
                shared.finish(ok.is_ok());
            });
        }
        tokio::spawn(shared.stream(tx));
    } else {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let data = tx.clone();
            let mut bytes = 0u64;
            let written = write_metrics(&app, &snap, format, gzip, |b| {
                bytes += b.len() as u64;
                data.blocking_send(Piece::Data(b))
                    .map_err(|_| std::fmt::Error)
            });
            if written.is_ok() && !gzip {
                app.shared_bodies.plain_written(bytes);
            }
            if written
                .and_then(|()| tx.blocking_send(Piece::End).map_err(|_| std::fmt::Error))
                .is_err()
            {
                tracing::debug!("/metrics: the client left");
            }
        });
    }
    let mut resp = Response::new(body);
    if gzip {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    resp
}

/// The containers' families by the text writer, then the exporter's own and `# EOF`, handed
/// to `put` piece by piece (gzipped with `gzip`). An error from `put` (the client went) stops
/// it; an error ends the body short, and the caller must not say it ended whole.
fn write_metrics(
    app: &App,
    snap: &Snapshot,
    format: Format,
    gzip: bool,
    put: impl FnMut(Bytes) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut out = Pieces::new(gzip, put);
    let mut text = String::with_capacity(PIECE + PIECE / 4);
    let mut send = |t: &mut String| out.send(t);
    if let Err(e) = prom::write_chunked(&mut text, snap, &app.options, format, PIECE, &mut send) {
        tracing::debug!("/metrics: the client left");
        return Err(e);
    }
    if let Err(e) = encode_own(app, &mut text, format) {
        tracing::error!("encoding the exporter's own metrics failed: {e}");
        return Err(e);
    }
    out.send(&mut text).and_then(|()| out.finish())
}

/// The exporter's own series (`collector_*`, `process_*`, events, policy violations), as
/// /metrics ends with them; the remote-write sink pushes the same.
pub fn encode_own(app: &App, out: &mut String, format: Format) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SelfCollector {
        stats: app.stats.clone(),
        sinks: app.sinks.clone(),
        runtimes: app.runtimes.clone(),
        events: app.events.clone(),
        violations: app.violations.clone(),
        criticals: app.criticals.clone(),
        setup: app.setup.clone(),
        connections: Some(app.connections.clone()),
    }));
    prom::encode(out, &registry, format)
}

/// Where `/metrics` text goes: to `put` in pieces as it is, or gzipped first. Public for the
/// encode bench, which measures a scrape with it.
pub struct Pieces<F> {
    put: F,
    gz: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl<F: FnMut(Bytes) -> Result<(), std::fmt::Error>> Pieces<F> {
    pub fn new(gzip: bool, put: F) -> Self {
        let gz = gzip.then(|| {
            flate2::write::GzEncoder::new(Vec::with_capacity(PIECE), flate2::Compression::fast())
        });
        Pieces { put, gz }
    }

    /// Takes `text` (leaving it empty): a piece goes to `put` now, or once gzip has made one.
    pub fn send(&mut self, text: &mut String) -> Result<(), std::fmt::Error> {
        let piece = match &mut self.gz {
            None => std::mem::replace(text, String::with_capacity(PIECE + PIECE / 4)).into(),
            Some(gz) => {
                gz.write_all(text.as_bytes()).map_err(|_| std::fmt::Error)?;
                text.clear();
                if gz.get_ref().len() < PIECE {
                    return Ok(());
                }
                std::mem::replace(gz.get_mut(), Vec::with_capacity(PIECE)).into()
            }
        };
        self.put(piece)
    }

    fn put(&mut self, piece: Bytes) -> Result<(), std::fmt::Error> {
        if piece.is_empty() {
            return Ok(());
        }
        (self.put)(piece)
    }

    /// The rest of the gzip stream, with its trailer.
    pub fn finish(mut self) -> Result<(), std::fmt::Error> {
        if let Some(gz) = self.gz.take() {
            let rest = gz.finish().map_err(|_| std::fmt::Error)?;
            self.put(rest.into())?;
        }
        Ok(())
    }
}

/// `gzip` in Accept-Encoding with a non-zero q.
fn accepts_gzip(v: &str) -> bool {
    v.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

/// Healthy while sweeps keep coming (the last one is no older than three intervals) and find
/// the cgroup hierarchy where it should be.
fn healthz(app: &App) -> Resp {
    let Some(s) = app.latest.get() else {
        return not_ready();
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let age = Duration::from_millis(now_ms.saturating_sub(s.timestamp_ms));
    let limit = app.interval * 3 + Duration::from_secs(5);
    if let Some(problem) = app.stats.problem() {
        text(StatusCode::SERVICE_UNAVAILABLE, &format!("{problem}\n"))
    } else if age > limit {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("last sweep {age:?} ago\n"),
        )
    } else {
        text(StatusCode::OK, "ok\n")
    }
}

fn container(app: &App, id: &str) -> Resp {
    let Some(s) = app.latest.get() else {
        return not_ready();
    };
    let id = percent_decode(id);
    match find(&s, &id) {
        Some(c) => json(c),
        None => text(StatusCode::NOT_FOUND, &format!("no container {id:?}\n")),
    }
}

/// `{key}/processes` or `{key}/history` as (key, what); `None` for a container's own figures.
/// A cgroup whose last component is `processes` or `history` keeps its own route.
fn sub_resource<'a>(app: &App, rest: &'a str) -> Option<(&'a str, &'static str)> {
    ["processes", "history"].into_iter().find_map(|what| {
        let key = rest.strip_suffix(what)?.strip_suffix('/')?;
        (!names_container(app, rest)).then_some((key, what))
    })
}

fn interval_ms(app: &App) -> u64 {
    app.interval.as_millis() as u64
}

/// A container's recent figures, as the web page charts them.
fn history(app: &App, key: &str) -> Resp {
    let Some(s) = app.latest.get() else {
        return not_ready();
    };
    let key = percent_decode(key);
    let Some(c) = find(&s, &key) else {
        return json_error(StatusCode::NOT_FOUND, &format!("no container {key:?}"));
    };
    let columns = crate::history::Columns::of(&views::lock(&app.history), &c.id, app.interval);
    match columns {
        Some(columns) => json(&views::HistoryOf {
            columns,
            cpu_limit_cores: views::cpu_limit(c),
            memory_limit_bytes: views::memory_limit(c, s.machine.memory_bytes),
        }),
        // Seen by a sweep the history has not recorded yet.
        None => json_error(
            StatusCode::NOT_FOUND,
            &format!("no history of {:?} yet", c.id),
        ),
    }
}

fn names_container(app: &App, key: &str) -> bool {
    app.latest
        .get()
        .is_some_and(|s| find(&s, &percent_decode(key)).is_some())
}

/// What `/api/v1/containers/{id}/processes` answers.
#[derive(Serialize)]
struct Processes<'a> {
    id: &'a str,
    processes: &'a [collector_core::ProcessInfo],
    /// More than `collector_core::MAX_PROCESSES`: the rest are left out.
    truncated: bool,
}

/// A container of the latest snapshot, its processes read from procfs on a blocking thread.
async fn processes(app: &App, key: &str) -> Resp {
    let Some(s) = app.latest.get() else {
        return not_ready();
    };
    let key = percent_decode(key);
    let Some(id) = find(&s, &key).map(|c| c.id.clone()) else {
        return json_error(StatusCode::NOT_FOUND, &format!("no container {key:?}"));
    };
    drop(s);
    let (src, cg) = (app.procfs.clone(), id.clone());
    let listed = tokio::task::spawn_blocking(move || {
        collector_core::list_processes(&src.roots, &src.hierarchy, &cg, &src.rootfs)
    })
    .await;
    use collector_core::Error;
    match listed {
        Ok(Ok(list)) => json(&Processes {
            id: &id,
            processes: &list.processes,
            truncated: list.truncated,
        }),
        // Stopped since the snapshot was taken.
        Ok(Err(Error::Read { source, .. })) if collector_core::error::is_vanished(&source) => {
            json_error(StatusCode::NOT_FOUND, &format!("container {id:?} is gone"))
        }
        Ok(Err(e @ Error::Invalid { .. })) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!("listing the processes of {id}: {e}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("listing the processes of {id}: {e}"),
        ),
    }
}

/// By cgroup path (`docker/<id>` or `/docker/<id>`), or by runtime id or a unique prefix of it.
fn find<'a>(s: &'a Snapshot, key: &str) -> Option<&'a Container> {
    let path = format!("/{}", key.trim_start_matches('/'));
    if let Some(c) = s.get(&path) {
        return Some(c);
    }
    if key.len() < 4 || key.contains('/') {
        return None;
    }
    let mut hits = s.containers.iter().filter(|c| {
        c.identity
            .container_id
            .as_deref()
            .is_some_and(|cid| cid.starts_with(key))
    });
    let first = hits.next()?;
    hits.next().is_none().then_some(first)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A container in the list: who it is, not its figures.
#[derive(Serialize)]
struct Summary<'a> {
    id: &'a str,
    kind: collector_core::Kind,
    runtime: Option<&'static str>,
    container_id: Option<&'a str>,
    pod_uid: Option<&'a str>,
    name: Option<&'a str>,
    image: Option<&'a str>,
    namespace: Option<&'a str>,
    pod: Option<&'a str>,
    labels: &'a std::collections::BTreeMap<String, String>,
    first_seen_ms: u64,
}

impl<'a> Summary<'a> {
    fn of(c: &'a Container) -> Self {
        Summary {
            id: &c.id,
            kind: c.identity.kind,
            runtime: c.identity.runtime.map(|r| r.name()),
            container_id: c.identity.container_id.as_deref(),
            pod_uid: c.identity.pod_uid.as_deref(),
            name: c.meta.name.as_deref(),
            image: c.meta.image.as_deref(),
            namespace: c.meta.namespace.as_deref(),
            pod: c.meta.pod.as_deref(),
            labels: &c.meta.labels,
            first_seen_ms: c.first_seen_ms,
        }
    }
}

/// `/api/v1/connections`: the peer graph of the latest snapshot, each container whose peers
/// were read with the peers of its last read.
#[derive(Serialize)]
struct Connections<'a> {
    timestamp_ms: u64,
    containers: Vec<PeersOf<'a>>,
}

#[derive(Serialize)]
struct PeersOf<'a> {
    #[serde(flatten)]
    who: Who<'a>,
    peers: &'a [collector_core::stats::Peer],
}

/// Who a container is, as the JSON answers name it.
#[derive(Serialize)]
pub struct Who<'a> {
    id: &'a str,
    container_id: Option<&'a str>,
    name: Option<&'a str>,
    image: Option<&'a str>,
    namespace: Option<&'a str>,
    pod: Option<&'a str>,
}

impl<'a> Who<'a> {
    pub fn of(c: &'a Container) -> Self {
        Who {
            id: &c.id,
            container_id: c.identity.container_id.as_deref(),
            name: c.meta.name.as_deref(),
            image: c.meta.image.as_deref(),
            namespace: c.meta.namespace.as_deref(),
            pod: c.meta.pod.as_deref(),
        }
    }
}

impl<'a> Connections<'a> {
    fn of(s: &'a Snapshot) -> Self {
        let containers = s
            .containers
            .iter()
            .filter(|c| c.stats.peers.current.is_some())
            .map(|c| PeersOf {
                who: Who::of(c),
                peers: &c.stats.peers.list,
            })
            .collect();
        Connections {
            timestamp_ms: s.timestamp_ms,
            containers,
        }
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(body) => {
            let mut r = Response::new(Body::whole(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // The latest figures: never from a cache.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

/// `{"error": ...}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Resp {
    let mut r = json(&serde_json::json!({ "error": message }));
    *r.status_mut() = status;
    r
}

fn not_ready() -> Resp {
    text(StatusCode::SERVICE_UNAVAILABLE, "no sweep finished yet\n")
}

fn text(status: StatusCode, body: &str) -> Resp {
    let mut r = Response::new(Body::whole(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
    }

    #[tokio::test]
    async fn large_json_is_gzipped_small_json_and_text_are_not() {
        use http_body_util::BodyExt;
        use std::io::Read;
        let big: Vec<String> = (0..2000).map(|i| format!("container-{i}")).collect();
        let r = gzip_json(json(&big));
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        let zipped = r.into_body().collect().await.expect("a body").to_bytes();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut plain)
            .expect("gzip");
        assert_eq!(plain, serde_json::to_string(&big).expect("JSON"));
        assert!(zipped.len() < plain.len() / 4);
        let small = gzip_json(json(&["a"]));
        assert!(small.headers().get(header::CONTENT_ENCODING).is_none());
        let text_body = gzip_json(text(StatusCode::OK, &"x".repeat(20_000)));
        assert!(text_body.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("system.slice%2Fdocker-x.scope"),
            "system.slice/docker-x.scope"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
