//! The JSON the web page polls: the machine (`/api/v1/machine`), the overview's rows
//! (`/api/v1/overview`: the latest snapshot with each container's latest rates) and a
//! container's history (`/api/v1/containers/{id}/history`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use collector_core::machine::Filesystem;
use collector_core::stats::PressureStats;
use collector_core::{Container, Snapshot};
use serde::Serialize;

use crate::history::{History, ModeShare};

/// The history, shared by the sweep thread (its one writer) and the handlers.
pub type SharedHistory = std::sync::Arc<Mutex<History>>;

pub fn lock(h: &Mutex<History>) -> MutexGuard<'_, History> {
    h.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `/api/v1/machine`.
#[derive(Serialize)]
pub struct Machine<'a> {
    timestamp_ms: u64,
    interval_ms: u64,
    cpu_cores: Option<u64>,
    cpu_physical_cores: Option<u64>,
    memory_bytes: Option<u64>,
    /// The machine cgroup's (`/`) working set, where it is followed.
    memory_used_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    /// Shares of the CPUs' time by mode since the previous recorded sweep.
    cpu_modes: Vec<ModeShare>,
    filesystems: &'a [Filesystem],
    pressure: &'a PressureStats,
    containers: usize,
    idle_containers: usize,
}

impl<'a> Machine<'a> {
    pub fn of(s: &'a Snapshot, h: &History, interval_ms: u64) -> Machine<'a> {
        let m = &s.machine;
        Machine {
            timestamp_ms: s.timestamp_ms,
            interval_ms,
            cpu_cores: m.cpu_cores,
            cpu_physical_cores: m.cpu_physical_cores,
            memory_bytes: m.memory_bytes,
            memory_used_bytes: s.get("/").and_then(|c| c.stats.memory.working_set_bytes),
            swap_bytes: m.swap_bytes,
            cpu_modes: h.cpu_modes().to_vec(),
            filesystems: &m.filesystems,
            pressure: &m.pressure,
            containers: rows(s).count(),
            idle_containers: rows(s).filter(|c| c.idle).count(),
        }
    }
}

/// The containers the table lists: all but the machine's own cgroup.
fn rows(s: &Snapshot) -> impl Iterator<Item = &Container> {
    s.containers.iter().filter(|c| c.id != "/")
}

/// `/api/v1/overview`.
#[derive(Serialize)]
pub struct Overview<'a> {
    timestamp_ms: u64,
    interval_ms: u64,
    containers: Vec<Row<'a>>,
}

/// One container of the overview: who it is, its figures now, and its findings so far.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    who: crate::server::Who<'a>,
    idle: bool,
    cpu_cores: Option<f32>,
    /// The CFS quota in cores; `None` when unlimited.
    cpu_limit_cores: Option<f64>,
    memory_bytes: Option<u64>,
    /// `None` when unlimited (or no lower than the machine's memory).
    memory_limit_bytes: Option<u64>,
    rx_bytes_per_s: Option<f32>,
    tx_bytes_per_s: Option<f32>,
    read_bytes_per_s: Option<f32>,
    write_bytes_per_s: Option<f32>,
    findings: Vec<FindingCount>,
}

#[derive(Serialize)]
struct FindingCount {
    kind: &'static str,
    count: u64,
}

/// The quota in cores, where there is one.
pub fn cpu_limit(c: &Container) -> Option<f64> {
    let spec = &c.stats.spec;
    match (spec.cpu_quota_us, spec.cpu_period_us) {
        (Some(q), Some(p)) if p > 0 => Some(q as f64 / p as f64),
        _ => None,
    }
}

/// The memory limit, where it binds below the machine's memory (v1 writes "unlimited" as a
/// huge number).
pub fn memory_limit(c: &Container, machine: Option<u64>) -> Option<u64> {
    c.stats
        .spec
        .memory_limit_bytes
        .filter(|l| machine.is_none_or(|m| *l < m))
}

impl<'a> Overview<'a> {
    pub fn of(s: &'a Snapshot, h: &History, interval_ms: u64) -> Overview<'a> {
        let containers = rows(s)
            .map(|c| {
                let p = h.latest(&c.id);
                let rate = |f: fn(&crate::history::Point) -> crate::history::Bf16| {
                    p.and_then(|p| f(p).get())
                };
                let findings = c
                    .stats
                    .security
                    .findings
                    .as_ref()
                    .map(|f| {
                        f.labeled()
                            .into_iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(kind, count)| FindingCount { kind, count })
                            .collect()
                    })
                    .unwrap_or_default();
                Row {
                    who: crate::server::Who::of(c),
                    idle: c.idle,
                    cpu_cores: rate(|p| p.cpu_cores),
                    cpu_limit_cores: cpu_limit(c),
                    memory_bytes: c.stats.memory.working_set_bytes,
                    memory_limit_bytes: memory_limit(c, s.machine.memory_bytes),
                    rx_bytes_per_s: rate(|p| p.rx_bytes_per_s),
                    tx_bytes_per_s: rate(|p| p.tx_bytes_per_s),
                    read_bytes_per_s: rate(|p| p.read_bytes_per_s),
                    write_bytes_per_s: rate(|p| p.write_bytes_per_s),
                    findings,
                }
            })
            .collect();
        Overview {
            timestamp_ms: s.timestamp_ms,
            interval_ms,
            containers,
        }
    }
}

/// `/api/v1/containers/{id}/history`: the columns, and the limits their charts draw.
#[derive(Serialize)]
pub struct HistoryOf<'a> {
    #[serde(flatten)]
    pub columns: crate::history::Columns<'a>,
    pub cpu_limit_cores: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn container(id: &str) -> Container {
        Container {
            id: id.into(),
            identity: collector_core::identity::classify(id, &[]),
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: Default::default(),
            stats: Default::default(),
        }
    }

    #[test]
    fn the_overview_leaves_the_machine_out_and_says_limits_and_findings() {
        let mut a = container("/a");
        a.stats.spec.cpu_quota_us = Some(50_000);
        a.stats.spec.cpu_period_us = Some(100_000);
        a.stats.spec.memory_limit_bytes = Some(1 << 30);
        let mut f = collector_core::FindingCounts::default();
        f.add(collector_core::security::FindingKind::MinerProcess);
        a.stats.security.findings = Some(f);
        let mut b = container("/b");
        // v1's "unlimited": no lower than the machine's memory.
        b.stats.spec.memory_limit_bytes = Some(9_223_372_036_854_771_712);
        b.idle = true;
        let mut s = Snapshot {
            containers: vec![container("/"), a, b],
            ..Snapshot::default()
        };
        s.machine.memory_bytes = Some(8 << 30);
        let h = History::new(Duration::from_secs(60), Duration::from_secs(1));
        let v = serde_json::to_value(Overview::of(&s, &h, 1000)).unwrap();
        let rows = v["containers"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        assert_eq!(rows[0]["cpu_limit_cores"], 0.5);
        assert_eq!(rows[0]["memory_limit_bytes"], 1u64 << 30);
        assert_eq!(
            rows[0]["findings"],
            serde_json::json!([{"kind": "miner_process", "count": 1}])
        );
        assert_eq!(rows[0]["cpu_cores"], serde_json::Value::Null, "no rate yet");
        assert_eq!(rows[1]["memory_limit_bytes"], serde_json::Value::Null);
        assert_eq!(rows[1]["idle"], true);
        let m = serde_json::to_value(Machine::of(&s, &h, 1000)).unwrap();
        assert_eq!(
            (m["containers"].as_u64(), m["idle_containers"].as_u64()),
            (Some(2), Some(1))
        );
    }
}
