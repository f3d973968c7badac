//! Real servers for the sink tests, each in its own temp dir on a free loopback port, killed
//! by pid when dropped.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{http_get, SETUP};

/// A free loopback port (bound and released; the server takes it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
            if std::net::TcpStream::connect(self.addr).is_ok()
                && http_get(self.addr, "/ping", &[]).status == 204
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

/// VictoriaMetrics, which takes the InfluxDB v2 write API.
pub struct Victoria {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Victoria {
    pub fn start() -> Victoria {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr={addr}"))
            .arg(format!("-storageDataPath={}", dir.path().display()))
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
        let v = Victoria {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(addr).is_ok()
                && http_get(addr, "/health", &[]).status == 200
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("victoria-metrics did not become healthy on {addr}");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
