//! `collector-exporter check`: what the agent can and cannot do on this node with these
//! settings, one row per capability, as a table or JSON. Fails (exit 1) when something the
//! configuration asks for cannot work.

use std::time::Duration;

use collector_core::preflight::Verdict;
use collector_core::Snapshot;
use serde::Serialize;

use crate::config::Settings;
use crate::setup::Misconfigured;

/// How a capability fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    /// Works in part, or needs a look.
    Warn,
    /// Asked for and cannot work.
    Fail,
    /// Not asked for.
    Off,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warn => "warn",
            State::Fail => "FAIL",
            State::Off => "off",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub check: String,
    pub state: State,
    pub detail: String,
}

/// Every check, in the order they are printed.
pub fn run(s: &Settings, config: collector_core::Config) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |check: &str, state: State, detail: String| {
        rows.push(Row {
            check: check.to_string(),
            state,
            detail,
        })
    };
    let collector = match crate::setup::open(s, config) {
        Ok((c, info)) => {
            for (name, v) in [
                ("path.procfs", &info.procfs),
                ("path.sysfs", &info.sysfs),
                ("path.rootfs", &info.rootfs),
            ] {
                row(name, verdict_state(v), v.detail().to_string());
            }
            Some(c)
        }
        Err(Misconfigured(m)) => {
            row("paths", State::Fail, m);
            None
        }
    };
    // A worker of its own: the runtime clients keep talking while sweeps block this thread.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            row("async runtime", State::Fail, e.to_string());
            return rows;
        }
    };
    if let Some(mut c) = collector {
        let mounts: Vec<String> = c
            .hierarchy()
            .mounts()
            .iter()
            .map(|m| m.path.display().to_string())
            .collect();
        row(
            "cgroups",
            State::Ok,
            format!("{:?}: {}", c.hierarchy().setup, mounts.join(", ")),
        );
        let runtimes =
            collector_core::runtime::Providers::start_on(crate::runtime_config(s), rt.handle());
        c.set_metadata_provider(runtimes.clone());
        // Runtimes answer within a moment; what they name shows from the next sweep.
        std::thread::sleep(Duration::from_millis(1500));
        c.sweep();
        c.settle_fs(Duration::from_secs(3));
        let snap = c.sweep();
        containers(&snap, &mut row);
        for st in runtimes.status() {
            let name = format!("{:?}", st.source).to_lowercase();
            let (state, detail) = if st.up {
                let named = snap
                    .containers
                    .iter()
                    .filter(|c| c.meta.name.is_some() && c.identity.runtime.is_some())
                    .count();
                (
                    State::Ok,
                    format!(
                        "{} answers; {} containers known, {named} named in the sweep",
                        st.socket.display(),
                        st.containers
                    ),
                )
            } else if st.socket.exists() {
                (
                    State::Fail,
                    format!("{} exists but does not answer", st.socket.display()),
                )
            } else {
                (
                    State::Off,
                    format!("no socket at {} (runtime absent)", st.socket.display()),
                )
            };
            row(&format!("runtime {name}"), state, detail);
        }
        runtimes.stop();
        limits(snap.containers.len(), mounts.len(), &mut row);
        let source = c.exec_source().name();
        let (state, detail) = match source {
            "process_events" => (
                State::Ok,
                "every exec seen as it happens (process events connector)".to_string(),
            ),
            "off" => (State::Off, "security signals off".to_string()),
            other => (
                if s.security.exec_events {
                    State::Warn
                } else {
                    State::Off
                },
                format!(
                    "{other}: new processes found on the process interval, shorter ones missed \
                     (the connector needs the host's PID and network namespaces and \
                     CAP_NET_ADMIN)"
                ),
            ),
        };
        row("exec events", state, detail);
    }
    for spec in &s.sinks {
        let probe = rt.block_on(crate::sinks::probe(spec));
        let (state, detail) = match probe {
            Ok(d) => (State::Ok, d),
            Err(e) => (State::Fail, e),
        };
        row(
            &format!("sink {} ({})", spec.name, spec.kind.type_name()),
            state,
            detail,
        );
    }
    match s.web_config.as_deref() {
        None => row(
            "web config",
            State::Off,
            "none: plain HTTP, no auth".to_string(),
        ),
        Some(p) => match crate::webconfig::WebConfig::load(p) {
            Ok(w) => row("web config", State::Ok, w.summary()),
            Err(e) => row("web config", State::Fail, e.to_string()),
        },
    }
    rows
}

fn verdict_state(v: &Verdict) -> State {
    match v {
        Verdict::Ok(_) => State::Ok,
        Verdict::Partial(_) => State::Warn,
        Verdict::Fatal(_) => State::Fail,
        Verdict::Unknown(_) => State::Off,
    }
}

/// How many containers were found, and how many lack CPU, memory or task figures (a cgroup
/// made in some hierarchies only; the root has no task count of its own).
fn containers(snap: &Snapshot, row: &mut impl FnMut(&str, State, String)) {
    let found = snap.containers.len();
    let lacking = |f: &dyn Fn(&collector_core::Container) -> bool| {
        snap.containers.iter().filter(|c| !f(c)).count()
    };
    let cpu = lacking(&|c| c.stats.cpu.usage_ns.is_some());
    let memory = lacking(&|c| c.stats.memory.usage_bytes.is_some());
    let tasks = lacking(&|c| c.id == "/" || c.stats.pids.current.is_some());
    let state = if found == 0 {
        State::Fail
    } else if cpu + memory + tasks > 0 {
        State::Warn
    } else {
        State::Ok
    };
    row(
        "containers",
        state,
        format!(
            "{found} cgroups found; without CPU figures {cpu}, without memory {memory}, without \
             a task count {tasks}; {} read errors",
            snap.errors.len()
        ),
    );
}

/// Descriptor and inotify limits against what this many containers need.
fn limits(containers: usize, mounts: usize, row: &mut impl FnMut(&str, State, String)) {
    use nix::sys::resource::{getrlimit, Resource};
    // A held directory per mount and a process and its net/dev per container, plus the
    // server's connections and the sinks'.
    let need = (containers * (mounts + 2) + 256) as u64;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => row(
            "open files",
            if soft >= need { State::Ok } else { State::Warn },
            format!("limit {soft}, about {need} wanted for {containers} containers"),
        ),
        Err(e) => row("open files", State::Warn, e.to_string()),
    }
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    // One hierarchy's directories, and each container's spec directories.
    let watches = (containers * 4) as u64;
    match (read("max_user_watches"), read("max_user_instances")) {
        (Some(w), Some(i)) => row(
            "inotify",
            if w >= watches && i >= 4 {
                State::Ok
            } else {
                State::Warn
            },
            format!(
                "max_user_watches {w} (about {watches} wanted), max_user_instances {i} (2 used); \
                 past them new cgroups are found by rescans"
            ),
        ),
        _ => row(
            "inotify",
            State::Warn,
            "limits unreadable: /proc/sys/fs/inotify".to_string(),
        ),
    }
}

/// Prints the rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
    println!("{:width$}  {:5}  DETAIL", "CHECK", "STATE");
    for r in rows {
        println!("{:width$}  {:5}  {}", r.check, r.state.name(), r.detail);
    }
}

/// Prints the rows as one JSON document: `{"ok": bool, "checks": [...]}`.
pub fn print_json(rows: &[Row]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        checks: &'a [Row],
    }
    let ok = passed(rows);
    println!(
        "{}",
        serde_json::to_string_pretty(&Out { ok, checks: rows })?
    );
    Ok(())
}

/// No row failed.
pub fn passed(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.state != State::Fail)
}
