//! What the probe reads of the exporter: its /metrics self-series, its process in /proc, the
//! machine's slab, and a scraper thread that times a /metrics GET every second and gathers
//! the started and stopped events of /api/v1/events.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One reading of the exporter and the machine.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub rss_mb: f64,
    pub fds: usize,
    pub threads: usize,
    pub slab_mb: f64,
    pub containers: f64,
    pub held_descriptors: f64,
    pub inotify_watches: f64,
    pub sweep_errors: f64,
    pub sweeps: f64,
    pub started: f64,
    pub stopped: f64,
    pub sweep_s: f64,
}

impl State {
    pub fn read(pid: u32, addr: SocketAddr) -> Result<State, String> {
        // The process first: after our own GET its RSS would hold that answer's buffers.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let fds = count_dir(&format!("/proc/{pid}/fd"))?;
        let threads = count_dir(&format!("/proc/{pid}/task"))?;
        let slab_mb = round1(slab_kb() as f64 / 1024.0);
        let body = get(addr, "/metrics")?;
        let s = |name: &str| series(&body, name, "").unwrap_or(0.0);
        Ok(State {
            rss_mb: rss_mb(&status),
            fds,
            threads,
            slab_mb,
            containers: s("collector_containers"),
            held_descriptors: s("collector_held_descriptors"),
            inotify_watches: s("collector_inotify_watches"),
            sweep_errors: s("collector_sweep_errors_total"),
            sweeps: s("collector_sweeps_total"),
            started: series(&body, "container_events_total", "event=\"started\"").unwrap_or(0.0),
            stopped: series(&body, "container_events_total", "event=\"stopped\"").unwrap_or(0.0),
            sweep_s: s("collector_sweep_duration_seconds"),
        })
    }
}

/// GET `path` from the exporter: the body of a 200 answer, else what went wrong.
pub fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let r = ::tests::try_http_request(addr, "GET", path, &[], &[])
        .map_err(|e| format!("GET {path}: {e}"))?;
    if r.status != 200 {
        return Err(format!("GET {path}: status {}: {}", r.status, r.text()));
    }
    Ok(r.text())
}

/// The sum of the samples of family `name` whose line holds `matching`, as churn.py's
/// `series`; `None` when there is none.
pub fn series(body: &str, name: &str, matching: &str) -> Option<f64> {
    let found: Vec<f64> = ::tests::samples(body, name)
        .into_iter()
        .filter(|(left, _)| left.contains(matching))
        .map(|(_, v)| v)
        .collect();
    (!found.is_empty()).then(|| found.iter().sum())
}

fn rss_mb(status: &str) -> f64 {
    round1(kb_field(status, "VmRSS:") as f64 / 1024.0)
}

fn kb_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn slab_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .map(|m| kb_field(&m, "Slab:"))
        .unwrap_or(0)
}

fn count_dir(path: &str) -> Result<usize, String> {
    std::fs::read_dir(path)
        .map(Iterator::count)
        .map_err(|e| format!("{path}: {e}"))
}

pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// What the scraper thread gathered.
#[derive(Debug, Default)]
pub struct Scrapes {
    /// Each /metrics GET's time in seconds; `None` when it failed.
    pub latencies: Vec<Option<f64>>,
    pub failures: Vec<String>,
    /// The last sweep's duration as each scrape found it, in seconds.
    pub sweep_s: Vec<Option<f64>>,
    /// The exporter's RSS (MB) each second: one reading at a moment can meet a sweep's or
    /// scrape's passing buffers.
    pub rss: Vec<(Instant, f64)>,
    /// Ids of the `started` and `stopped` events seen in /api/v1/events.
    pub started_ids: BTreeSet<String>,
    pub stopped_ids: BTreeSet<String>,
}

/// Scrapes /metrics and reads the exporter's (`pid`) RSS every second, and the recent events
/// (the exporter keeps the last 1,000) every `events_every` scrapes, until dropped.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    pub out: Arc<Mutex<Scrapes>>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl Scraper {
    pub fn start(addr: SocketAddr, pid: u32, events_every: usize) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let out = Arc::new(Mutex::new(Scrapes::default()));
        let (stop2, out2) = (stop.clone(), out.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                // RSS before the GET, as `State::read` takes it.
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"));
                let t0 = Instant::now();
                let r = get(addr, "/metrics");
                let took = t0.elapsed();
                if n.is_multiple_of(events_every.max(1)) {
                    gather_events(addr, &out2);
                }
                n += 1;
                let mut o = lock(&out2);
                if let Ok(status) = rss {
                    o.rss.push((Instant::now(), rss_mb(&status)));
                }
                match r {
                    Ok(body) => {
                        o.latencies.push(Some(took.as_secs_f64()));
                        let sweep = series(&body, "collector_sweep_duration_seconds", "");
                        o.sweep_s.push(sweep);
                    }
                    Err(e) => {
                        o.latencies.push(None);
                        o.failures.push(e);
                    }
                }
                drop(o);
                std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
            }
        });
        Scraper {
            stop,
            out,
            thread: Some(thread),
            addr,
        }
    }

    /// Stops the thread and gathers the events one last time.
    pub fn finish(mut self) -> Scrapes {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        gather_events(self.addr, &self.out);
        std::mem::take(&mut *lock(&self.out))
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lock(m: &Mutex<Scrapes>) -> std::sync::MutexGuard<'_, Scrapes> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn gather_events(addr: SocketAddr, out: &Mutex<Scrapes>) {
    let events = match get(addr, "/api/v1/events").and_then(|b| {
        serde_json::from_str::<Vec<Value>>(&b).map_err(|e| format!("/api/v1/events: {e}"))
    }) {
        Ok(v) => v,
        Err(e) => {
            lock(out).failures.push(e);
            return;
        }
    };
    let mut o = lock(out);
    for e in events {
        let (Some(kind), Some(id)) = (e["kind"].as_str(), e["id"].as_str()) else {
            continue;
        };
        match kind {
            "started" => o.started_ids.insert(id.to_string()),
            "stopped" => o.stopped_ids.insert(id.to_string()),
            _ => false,
        };
    }
}

/// The median and the largest of `values`; `None` when there is none.
pub fn median_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((*v.get(v.len() / 2)?, *v.last()?))
}

/// The `q` quantile of the figures there are (seconds), in milliseconds.
pub fn quantile_ms(seconds: &[Option<f64>], q: f64) -> Option<f64> {
    let mut ok: Vec<f64> = seconds.iter().flatten().copied().collect();
    ok.sort_by(f64::total_cmp);
    let last = ok.len().checked_sub(1)?;
    let i = ((q * ok.len() as f64) as usize).min(last);
    Some(round1(ok[i] * 1000.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn series_sums_the_matching_samples() {
        let body = "# HELP container_events_total x\n\
                    container_events_total{event=\"started\"} 3\n\
                    container_events_total{event=\"started\",image=\"a\"} 2\n\
                    container_events_total{event=\"stopped\"} 1\n\
                    collector_containers 51\n";
        assert_eq!(
            super::series(body, "container_events_total", "event=\"started\""),
            Some(5.0)
        );
        assert_eq!(super::series(body, "collector_containers", ""), Some(51.0));
        assert_eq!(super::series(body, "collector_sweeps_total", ""), None);
    }

    #[test]
    fn median_and_max() {
        assert_eq!(super::median_max(&[3.0, 1.0, 2.0]), Some((2.0, 3.0)));
        assert_eq!(super::median_max(&[]), None);
    }

    #[test]
    fn quantiles_skip_failed_scrapes() {
        let l = [Some(0.010), None, Some(0.002), Some(0.004)];
        assert_eq!(super::quantile_ms(&l, 0.5), Some(4.0));
        assert_eq!(super::quantile_ms(&l, 1.0), Some(10.0));
        assert_eq!(super::quantile_ms(&[None], 0.5), None);
    }
}
