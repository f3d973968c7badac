//! `osmem-server` (PyPI `osmem-server==0.1.6`): an in-memory server speaking the OpenSearch
//! REST API (`_bulk`, `_count`, `_search` with aggregations, index templates, mappings). The
//! nearest thing to Elasticsearch that installs here. It keeps nothing on disk: a restart
//! starts empty.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{http_request, HttpResponse, SETUP};

/// A running osmem-server on a loopback port, killed by pid when dropped.
pub struct Osmem {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Osmem {
    /// The binary: `$OSMEM_SERVER_BIN`, else the one inside the installed Python package.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("OSMEM_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import osmem_server,os;print(os.path.dirname(osmem_server.__file__))",
            ])
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
                let bin = PathBuf::from(dir).join("bin/osmem-server");
                if bin.exists() {
                    return bin;
                }
                panic!("osmem-server not found at {}; install it with `{SETUP}` (pip install osmem-server==0.1.6)", bin.display());
            }
            _ => panic!("the osmem_server Python package is not installed; install it with `{SETUP}` (pip install osmem-server==0.1.6)"),
        }
    }

    /// Starts on a free port that the server picks and reports.
    pub fn start() -> Osmem {
        let (child, addr) = spawn("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        Osmem {
            child: Some(child),
            addr,
        }
    }

    /// Starts again on the same port (empty: it keeps nothing).
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "osmem-server is still running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger a moment after the kill.
            match spawn(&self.addr.to_string()) {
                Ok((child, addr)) => {
                    assert_eq!(addr, self.addr);
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Kills it (SIGKILL, by pid): an outage.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A request with an optional JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> HttpResponse {
        match body {
            Some(b) => http_request(
                self.addr,
                method,
                path,
                &[("Content-Type", "application/json")],
                &serde_json::to_vec(b).unwrap(),
            ),
            None => http_request(self.addr, method, path, &[], &[]),
        }
    }

    /// A request whose answer must be 2xx, as JSON.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let r = self.request(method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: HTTP {} {}",
            r.status,
            r.text()
        );
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    /// Documents matching a query in indices matching `index`.
    pub fn count(&self, index: &str, query: serde_json::Value) -> u64 {
        let v = self.json(
            "POST",
            &format!("/{index}/_count"),
            Some(&serde_json::json!({ "query": query })),
        );
        v["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {v}"))
    }
}

fn spawn(addr: &str) -> Result<(Child, SocketAddr), String> {
    let bin = Osmem::binary();
    let mut child = Command::new(&bin)
        .args(["-addr", addr, "-no-stdin-watch", "-no-ja"])
        .args(["-parent-pid", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} not runnable ({e}); install it with `{SETUP}`",
                bin.display()
            )
        });
    // It prints one JSON line with its URL when it listens.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so it never blocks on a full pipe.
        let _ = std::io::copy(&mut r.by_ref().take(u64::MAX), &mut std::io::sink());
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let url = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["url"].as_str().map(str::to_string));
    let Some(url) = url else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "osmem-server on {addr} did not report its address (got {line:?})"
        ));
    };
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .expect("host:port");
    Ok((child, addr))
}

impl Drop for Osmem {
    fn drop(&mut self) {
        self.stop();
    }
}
