//! CRI-O's own HTTP endpoint on its socket: `GET /info` to see it is there, then
//! `GET /containers/<id>` for each container the collector meets (CRI-O lists nothing and
//! streams no events there). Known containers are inspected again every `refresh_interval`,
//! and forgotten once CRI-O no longer knows them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hyper::StatusCode;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::http::UnixHttp;
use super::{metadata, safe_id, BoxError, CrioConfig, Shared, Want};

/// Retries for an id CRI-O does not know yet (its cgroup can come before CRI-O records it):
/// after 250 ms, doubling, this many times.
const RETRIES: u32 = 5;

/// `GET /containers/<id>`, the parts used.
#[derive(Debug, Deserialize)]
struct Info {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// A `GET /containers/<id>` answer's metadata.
pub(super) fn info_metadata(body: &[u8]) -> serde_json::Result<crate::Metadata> {
    let c: Info = serde_json::from_slice(body)?;
    Ok(metadata(
        c.name.as_deref().unwrap_or(""),
        c.image.as_deref().unwrap_or(""),
        c.labels.unwrap_or_default(),
    ))
}

pub(super) struct Session {
    config: CrioConfig,
    http: UnixHttp,
    want: mpsc::Receiver<Want>,
    /// Ids to ask again: when, and how many tries so far.
    retry: HashMap<String, (Instant, u32)>,
}

impl Session {
    pub fn new(config: CrioConfig, timeout: Duration, want: mpsc::Receiver<Want>) -> Session {
        Session {
            http: UnixHttp {
                socket: config.socket.clone(),
                timeout,
            },
            config,
            want,
            retry: HashMap::new(),
        }
    }

    /// Asks CRI-O about one container. `Ok(false)` when it does not know it.
    async fn inspect(&mut self, shared: &Shared, id: &str) -> Result<bool, BoxError> {
        if !safe_id(id) {
            return Ok(true);
        }
        let (status, body) = self.http.get(&format!("/containers/{id}")).await?;
        match status {
            StatusCode::OK => {
                // One container's answer that cannot be read leaves that container unnamed
                // (asked again with back-off); the others keep theirs.
                let meta = match info_metadata(&body) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(runtime = "crio", "GET /containers/{id}: {e}");
                        return Ok(false);
                    }
                };
                shared.upsert(id, "", meta);
                Ok(true)
            }
            StatusCode::NOT_FOUND => {
                shared.remove(id, "");
                Ok(false)
            }
            s => {
                tracing::debug!(runtime = "crio", "GET /containers/{id}: {s}");
                Ok(false)
            }
        }
    }

    async fn on_want(&mut self, shared: &Shared, id: String) -> Result<(), BoxError> {
        if shared.knows(&id) || self.retry.contains_key(&id) {
            return Ok(());
        }
        if !self.inspect(shared, &id).await? {
            self.retry
                .insert(id, (Instant::now() + Duration::from_millis(250), 1));
        }
        Ok(())
    }

    async fn retry_due(&mut self, shared: &Shared) -> Result<(), BoxError> {
        let now = Instant::now();
        let due: Vec<(String, u32)> = self
            .retry
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(id, (_, n))| (id.clone(), *n))
            .collect();
        for (id, n) in due {
            self.retry.remove(&id);
            if !self.inspect(shared, &id).await? && n < RETRIES {
                let wait = Duration::from_millis(250) * 2u32.pow(n);
                self.retry.insert(id, (Instant::now() + wait, n + 1));
            }
        }
        Ok(())
    }

    async fn refresh(&mut self, shared: &Shared) -> Result<(), BoxError> {
        let ids: Vec<String> = shared.read().keys().cloned().collect();
        for id in ids {
            self.inspect(shared, &id).await?;
        }
        Ok(())
    }

    async fn follow(&mut self, shared: &Shared) -> Result<(), BoxError> {
        let (status, _) = self.http.get("/info").await?;
        if status != StatusCode::OK {
            return Err(format!("GET /info: {status}").into());
        }
        // What was learnt before an outage may have changed meanwhile.
        self.refresh(shared).await?;
        shared.mark_up();
        let mut refresh = super::backstop(self.config.refresh_interval);
        loop {
            let next_retry = self.retry.values().map(|(at, _)| *at).min();
            tokio::select! {
                Some(w) = self.want.recv() => self.on_want(shared, w.id).await?,
                _ = refresh.tick() => self.refresh(shared).await?,
                _ = sleep_until(next_retry) => self.retry_due(shared).await?,
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

#[cfg(test)]
mod tests {
    use super::super::{Config, CrioConfig, Providers, Source};
    use crate::identity::classify;
    use crate::MetadataProvider;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const ID: &str = "4f1c2e9a7b3d5c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6";

    /// A stand-in for CRI-O's HTTP endpoint: answers `/info` and `/containers/<ID>`, 404
    /// otherwise, one request per connection; counts requests.
    fn fake_crio(listener: UnixListener, hits: Arc<AtomicUsize>) {
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                hits.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                let mut r = BufReader::new(conn.try_clone().unwrap());
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = if path == "/info" {
                    (
                        "200 OK",
                        r#"{"storage_driver":"overlay","cgroup_driver":"systemd"}"#.to_string(),
                    )
                } else if path == format!("/containers/{ID}") {
                    (
                        "200 OK",
                        r#"{"name":"k8s_web_web-7c9_prod_0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f_0",
                        "pid":42,"image":"registry.example/web:1.4.2","image_ref":"sha256:ab",
                        "created_time":1,"labels":{"io.kubernetes.container.name":"web",
                        "io.kubernetes.pod.name":"web-7c9","io.kubernetes.pod.namespace":"prod",
                        "io.kubernetes.pod.uid":"0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"},
                        "annotations":{},"crio_annotations":{},"log_path":"","root":"",
                        "sandbox":"s","ip_addresses":[]}"#
                            .to_string(),
                    )
                } else {
                    ("404 Not Found", "container not found".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    #[test]
    fn names_a_crio_container_from_its_inspect_endpoint_once_crio_appears() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("crio.sock");
        let mut config = Config::none();
        config.crio = Some(CrioConfig {
            socket: socket.clone(),
            refresh_interval: Duration::from_secs(60),
        });
        config.backoff_initial = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(100);
        let p = Providers::start(config);
        let cg = format!("/kubepods.slice/kubepods-pod0f6c1d2e_3a4b_4c5d_8e9f_0a1b2c3d4e5f.slice/crio-{ID}.scope");
        let ident = classify(&cg, &[]);
        // Absent: nothing known, nothing blocks.
        let t = Instant::now();
        assert_eq!(p.lookup(&ident, &cg), None);
        assert!(t.elapsed() < Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(150));
        assert!(!p.status()[0].up);

        // CRI-O comes up: picked up by the back-off loop, then asked on a miss.
        let hits = Arc::new(AtomicUsize::new(0));
        fake_crio(UnixListener::bind(&socket).unwrap(), hits.clone());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.status()[0].up {
            assert!(Instant::now() < deadline, "crio never seen up");
            std::thread::sleep(Duration::from_millis(10));
        }
        let g = p.generation();
        assert_eq!(p.lookup(&ident, &cg), None, "first lookup asks");
        let m = loop {
            if let Some(m) = p.lookup(&ident, &cg) {
                break m;
            }
            assert!(Instant::now() < deadline, "crio container never named");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(p.generation() > g);
        assert_eq!(
            m.name.as_deref(),
            Some("k8s_web_web-7c9_prod_0f6c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f_0")
        );
        assert_eq!(m.image.as_deref(), Some("registry.example/web:1.4.2"));
        assert_eq!(
            (
                m.namespace.as_deref(),
                m.pod.as_deref(),
                m.container.as_deref()
            ),
            (Some("prod"), Some("web-7c9"), Some("web"))
        );
        assert_eq!(p.status()[0].source, Source::Crio);
        assert_eq!(p.status()[0].containers, 1);

        // An id CRI-O does not know is tried a few times with back-off, then left alone.
        let other = format!("/kubepods.slice/x/crio-{}.scope", "ab".repeat(32));
        let oi = classify(&other, &[]);
        let before = hits.load(Ordering::SeqCst);
        assert_eq!(p.lookup(&oi, &other), None);
        std::thread::sleep(Duration::from_millis(300));
        let asked = hits.load(Ordering::SeqCst) - before;
        assert!((1..=3).contains(&asked), "asked {asked} times in 300 ms");
        drop(p);
    }
}
