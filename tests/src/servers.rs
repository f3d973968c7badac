//! Real servers for the sink tests, each in its own temp dir on a free loopback port, killed
//! by pid when dropped.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::SETUP;

/// A free loopback port for a server the test starts next.
///
/// Taken below the kernel's ephemeral range (32768-60999), so no outgoing connection can
/// grab it between our release and the server's bind, and never handed out twice in one
/// test process: two tests in one binary once drew the same port, one as InfluxDB's HTTP
/// port and one as its RPC port, and the readiness probe hit the wrong server.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // Start somewhere different per process so two test binaries run at once rarely meet.
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for i in 0..SPAN {
        let port = (LOW + (seed.wrapping_add(i.wrapping_mul(7_919))) % SPAN) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// InfluxDB 1.x (`influxd` from Debian's `influxdb`).
pub struct Influxd {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Influxd {
    pub fn start() -> Influxd {
        let dir = tempfile::tempdir().unwrap();
        let (http, rpc) = (free_port(), free_port());
        let d = dir.path().display();
        let config = dir.path().join("influxdb.conf");
        std::fs::write(
            &config,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = \"{d}/meta\"\n\
                 [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n\
                 [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
                 [monitor]\n  store-enabled = false\n"
            ),
        )
        .unwrap();
        let mut s = Influxd {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], http)),
            dir,
            config,
        };
        s.resume();
        s
    }

    /// Starts (again) on the same data and port.
    pub fn resume(&mut self) {
        let child = Command::new("influxd")
            .args(["-config", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("influxd not runnable ({e}); install it with `{SETUP}`"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "influxd exited during start ({status}); config {:?}",
                    self.config
                );
            }
            if crate::try_http_request(self.addr, "GET", "/ping", &[], &[])
                .is_ok_and(|r| r.status == 204)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("influxd did not answer /ping on {}", self.addr);
    }

    /// Kills it (SIGKILL): an outage.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs an InfluxQL statement (POST /query) and returns the JSON answer.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let body = format!("q={}", crate::urlencode(q));
        let r = crate::http_post(
            self.addr,
            &format!("/query?db={db}"),
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VictoriaMetrics, which takes the InfluxDB v2 write API and Prometheus remote write
/// (`/api/v1/write`).
pub struct Victoria {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Victoria {
    pub fn start() -> Victoria {
        let mut v = Victoria {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir: tempfile::tempdir().unwrap(),
        };
        v.resume();
        v
    }

    /// Starts (again) on the same data and port.
    pub fn resume(&mut self) {
        let addr = self.addr;
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", self.dir.path().display()))
            .args([
                "-retentionPeriod=1",
                "-search.latencyOffset=0s",
                "-search.disableCache",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("victoria-metrics not runnable ({e}); install it with `{SETUP}`")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if crate::try_http_request(addr, "GET", "/health", &[], &[])
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("victoria-metrics did not become healthy on {addr}");
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s): an outage. Not SIGKILL at once: samples
    /// it took in the last seconds are still in memory, and would be lost by the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Prometheus scraping one target every second (or a remote-write receiver), its data
/// in a temp dir; ready when started, killed by pid when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: SocketAddr) -> Prometheus {
        Prometheus::with_config(|_| {
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ccol\n    static_configs:\n      - targets: ['{target}']\n"
            )
        })
    }

    /// One that scrapes nothing and takes remote write on `/api/v1/write`.
    pub fn receiver() -> Prometheus {
        Prometheus::launch(
            |_| "global:\n  evaluation_interval: 1s\n".to_string(),
            &["--web.enable-remote-write-receiver"],
        )
    }

    /// Started on the configuration `config` writes, given its own directory (for rule files).
    pub fn with_config(config: impl FnOnce(&std::path::Path) -> String) -> Prometheus {
        Prometheus::launch(config, &[])
    }

    fn launch(config: impl FnOnce(&std::path::Path) -> String, args: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temp dir");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config(dir.path())).expect("prometheus.yml");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus not runnable ({e}); install it with `{SETUP}`"));
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !crate::try_http_request(p.addr, "GET", "/-/ready", &[], &[])
            .is_ok_and(|r| r.status == 200)
        {
            assert!(Instant::now() < deadline, "prometheus not ready on {addr}");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Prometheus {
    /// An instant query's result vector (empty on an error, which the caller's assertions name
    /// with the query).
    pub fn instant(&self, q: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", crate::urlencode(q));
        let r = crate::http_get(self.addr, &path, &[]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
