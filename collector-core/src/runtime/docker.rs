//! The Docker Engine API on its unix socket, for Docker and for Podman's Docker-compatible
//! service: `GET /containers/json?all=1` for the table, `GET /events` (containers only) to hear
//! of changes as they happen, `GET /containers/<id>/json` for one container.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::StatusCode;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::http::{JsonStream, UnixHttp};
use super::{metadata, safe_id, AbortOnDrop, BoxError, EngineConfig, Shared, Table, Want};
use crate::Metadata;

/// `filters={"type":["container"]}`, URL-encoded.
const EVENTS_PATH: &str = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";

/// An id asked for and not found is not asked for again before this.
const ASK_AGAIN: Duration = Duration::from_secs(10);

/// One item of `GET /containers/json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListItem {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `GET /containers/<id>/json`, the parts used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    config: Option<InspectConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// One message of `GET /events`: `{"Type":"container","Action":"start","Actor":{"ID":..}}`
/// (older daemons also send `status` and `id`).
#[derive(Debug, Default, Deserialize)]
struct Event {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<Actor>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: Option<String>,
}

impl Event {
    fn container_id(&self) -> Option<&str> {
        self.actor
            .as_ref()
            .and_then(|a| a.id.as_deref())
            .or(self.id.as_deref())
    }

    fn action(&self) -> &str {
        self.action
            .as_deref()
            .or(self.status.as_deref())
            .unwrap_or("")
    }
}

/// What an event asks of the table.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// Read the container again (it is new, renamed, updated).
    Inspect,
    /// Read it if it is not known yet.
    InspectIfUnknown,
    Remove,
    Ignore,
}

fn change(e: &Event) -> Change {
    if e.kind.as_deref().is_some_and(|k| k != "container") {
        return Change::Ignore;
    }
    let action = e.action();
    // `exec_start: sh -c ...`, `health_status: healthy`: the container is unchanged.
    let verb = action.split(':').next().unwrap_or("").trim();
    match verb {
        "destroy" | "remove" => Change::Remove,
        "create" | "start" | "restart" | "rename" | "update" | "init" => Change::Inspect,
        v if v.starts_with("exec") || v == "health_status" || v.is_empty() => Change::Ignore,
        _ => Change::InspectIfUnknown,
    }
}

/// The containers of a `GET /containers/json` answer, each with its metadata.
pub(super) fn list_table(body: &[u8]) -> serde_json::Result<Table> {
    let items: Vec<ListItem> = serde_json::from_slice(body)?;
    let mut fresh = Table::new();
    for c in items {
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(String::as_str)
            .unwrap_or("");
        let meta = metadata(
            name,
            c.image.as_deref().unwrap_or(""),
            c.labels.unwrap_or_default(),
        );
        fresh.insert(
            c.id,
            vec![super::Record {
                namespace: String::new(),
                meta,
            }],
        );
    }
    Ok(fresh)
}

/// A `GET /containers/<id>/json` answer: the container's full id and its metadata.
pub(super) fn inspect_metadata(body: &[u8]) -> serde_json::Result<(String, Metadata)> {
    let c: Inspect = serde_json::from_slice(body)?;
    let (image, labels) = match c.config {
        Some(cfg) => (cfg.image, cfg.labels.unwrap_or_default()),
        None => (None, BTreeMap::new()),
    };
    let image = image.or(c.image).unwrap_or_default();
    Ok((
        c.id,
        metadata(c.name.as_deref().unwrap_or(""), &image, labels),
    ))
}

/// An event stream as it arrived, read as `read_events` and `on_event` read it; returns how
/// many events named a container.
#[cfg(feature = "fuzzing")]
pub(super) fn fuzz_events(chunks: &[&[u8]]) -> usize {
    let mut split = JsonStream::default();
    let mut n = 0;
    for c in chunks {
        for e in split.push::<Event>(c) {
            if e.container_id().is_some() {
                let _ = change(&e);
                n += 1;
            }
        }
    }
    n
}

pub(super) struct Session {
    config: EngineConfig,
    http: UnixHttp,
    want: mpsc::Receiver<Want>,
    /// Ids asked for on a lookup miss, and when.
    asked: HashMap<String, Instant>,
}

impl Session {
    pub fn new(config: EngineConfig, timeout: Duration, want: mpsc::Receiver<Want>) -> Session {
        Session {
            http: UnixHttp {
                socket: config.socket.clone(),
                timeout,
            },
            config,
            want,
            asked: HashMap::new(),
        }
    }

    async fn relist(&mut self, shared: &Shared) -> Result<(), BoxError> {
        let (status, body) = self.http.get("/containers/json?all=1").await?;
        if status != StatusCode::OK {
            return Err(format!("GET /containers/json: {status}").into());
        }
        shared.replace(list_table(&body)?);
        let now = Instant::now();
        self.asked.retain(|_, t| now.duration_since(*t) < ASK_AGAIN);
        Ok(())
    }

    /// Reads one container into the table (removes it when the daemon no longer knows it).
    async fn inspect(&mut self, shared: &Shared, id: &str) -> Result<(), BoxError> {
        if !safe_id(id) {
            return Ok(());
        }
        let (status, body) = self.http.get(&format!("/containers/{id}/json")).await?;
        match status {
            StatusCode::OK => {
                // One container's answer that cannot be read leaves that container unnamed
                // (asked again after ASK_AGAIN); the others keep theirs.
                let (full_id, meta) = match inspect_metadata(&body) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(
                            runtime = shared.source.name(),
                            "GET /containers/{id}/json: {e}"
                        );
                        return Ok(());
                    }
                };
                shared.upsert(&full_id, "", meta);
                if full_id != *id {
                    // Asked by a short id: keep the full one only.
                    shared.remove(id, "");
                }
            }
            StatusCode::NOT_FOUND => shared.remove(id, ""),
            s => tracing::debug!(
                runtime = shared.source.name(),
                "GET /containers/{id}/json: {s}"
            ),
        }
        Ok(())
    }

    async fn on_event(&mut self, shared: &Shared, e: Event) -> Result<(), BoxError> {
        let Some(id) = e.container_id().map(str::to_string) else {
            return Ok(());
        };
        match change(&e) {
            Change::Inspect => self.inspect(shared, &id).await,
            Change::InspectIfUnknown if !shared.knows(&id) => self.inspect(shared, &id).await,
            Change::Remove => {
                shared.remove(&id, "");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_want(&mut self, shared: &Shared, w: Want) -> Result<(), BoxError> {
        if shared.knows(&w.id) {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(t) = self.asked.get(&w.id) {
            if now.duration_since(*t) < ASK_AGAIN {
                return Ok(());
            }
        }
        self.asked.insert(w.id.clone(), now);
        self.inspect(shared, &w.id).await
    }

    async fn follow(&mut self, shared: &Shared) -> Result<(), BoxError> {
        // Subscribe first, list second: what happens in between is heard, not lost.
        let (tx, mut events) = mpsc::channel::<Event>(1024);
        let http = self.http.clone();
        let _reader = AbortOnDrop(tokio::spawn(async move {
            let r = read_events(&http, tx).await;
            if let Err(e) = r {
                tracing::debug!("event stream ended: {e}");
            }
        }));
        self.relist(shared).await?;
        shared.mark_up();
        let mut relist = super::backstop(self.config.relist_interval);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.on_event(shared, e).await?,
                    None => return Err("the event stream ended".into()),
                },
                _ = relist.tick() => self.relist(shared).await?,
                Some(w) = self.want.recv() => self.on_want(shared, w).await?,
            }
        }
    }
}

impl super::Session for Session {
    async fn run(&mut self, shared: &Shared) -> BoxError {
        match self.follow(shared).await {
            Ok(()) => "stopped".into(),
            Err(e) => e,
        }
    }
}

/// Streams `GET /events` into `tx` until the connection ends.
async fn read_events(http: &UnixHttp, tx: mpsc::Sender<Event>) -> Result<(), BoxError> {
    let resp = http.send(EVENTS_PATH).await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("GET /events: {}", resp.status()).into());
    }
    let mut body = resp.into_body();
    let mut split = JsonStream::default();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        for e in split.push::<Event>(data) {
            if tx.send(e).await.is_err() {
                return Ok(());
            }
        }
    }
    Err("the daemon closed the event stream".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_inspect_and_events() {
        let list = br#"[{"Id":"abc","Names":["/t1"],"Image":"bb:1","ImageID":"sha256:x",
            "Labels":{"app":"x"},"State":"running"},{"Id":"def","Names":null,"Labels":null}]"#;
        let items: Vec<ListItem> = serde_json::from_slice(list).unwrap();
        assert_eq!(items[0].names.as_ref().unwrap()[0], "/t1");
        assert_eq!(items[1].labels, None);
        let inspect = br#"{"Id":"abc","Name":"/t1","Image":"sha256:x",
            "Config":{"Image":"bb:1","Labels":{"app":"x"}},"State":{"Status":"running"}}"#;
        let c: Inspect = serde_json::from_slice(inspect).unwrap();
        assert_eq!(c.config.unwrap().image.as_deref(), Some("bb:1"));

        let ev = |s: &str| serde_json::from_str::<Event>(s).unwrap();
        let e = ev(
            r#"{"status":"start","id":"abc","from":"bb:1","Type":"container","Action":"start",
            "Actor":{"ID":"abc","Attributes":{"name":"t1"}},"scope":"local","time":1,"timeNano":1}"#,
        );
        assert_eq!(
            (e.container_id(), change(&e)),
            (Some("abc"), Change::Inspect)
        );
        let e = ev(r#"{"Type":"container","Action":"destroy","Actor":{"ID":"abc"}}"#);
        assert_eq!(change(&e), Change::Remove);
        let e =
            ev(r#"{"Type":"container","Action":"exec_start: sh -c true","Actor":{"ID":"abc"}}"#);
        assert_eq!(change(&e), Change::Ignore);
        let e = ev(r#"{"Type":"container","Action":"die","Actor":{"ID":"abc"}}"#);
        assert_eq!(change(&e), Change::InspectIfUnknown);
        let e = ev(r#"{"Type":"network","Action":"connect","Actor":{"ID":"n"}}"#);
        assert_eq!(change(&e), Change::Ignore);
        // Podman's compatible events.
        let e = ev(r#"{"status":"remove","id":"abc","Type":"container","Action":"remove"}"#);
        assert_eq!(
            (e.container_id(), change(&e)),
            (Some("abc"), Change::Remove)
        );
    }
}
