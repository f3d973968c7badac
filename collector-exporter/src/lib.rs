//! collector-exporter: reads every container's cgroups on an interval and serves the latest
//! figures to Prometheus. Run with no arguments for the built-in defaults; `--help` lists
//! the flags, each of which can also be set in a TOML file (`--config.file`).
//!
//! A library too, so that the integration tests run the very same entry point.

pub mod body;
pub mod check;
pub mod config;
pub mod connections;
pub mod error;
pub mod history;
pub mod listener;
pub mod policy;
pub mod selfmetrics;
pub mod server;
pub mod setup;
pub mod shared_body;
pub mod sinks;
pub mod state;
pub mod ui;
pub mod value;
pub mod views;
pub mod webconfig;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::FromArgMatches;
use collector_core::prometheus::{Format, Options};
use collector_core::sink::SinkFeeder;
use collector_core::{Collector, Config, Roots, Snapshot};

use config::{CheckFormat, Cli, Command, Settings, SnapshotFormat};
use selfmetrics::SweepStats;
use state::Latest;

/// How long the sinks get, together, to deliver what they hold once a signal says stop.
const SINK_GRACE: Duration = Duration::from_secs(5);

/// The whole program: parse the command line, then serve or print a snapshot.
pub fn run() -> ExitCode {
    let cli = match Cli::from_arg_matches(&config::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let settings = match Settings::resolve(&cli.flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("collector-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    raise_fd_limit();
    tune_malloc();
    let result = match cli.command {
        Some(Command::Snapshot { format }) => snapshot(&settings, format),
        Some(Command::Check { format }) => return check(&settings, format),
        None => {
            let web = match settings
                .web_config
                .as_deref()
                .map(webconfig::WebConfig::load)
            {
                None => None,
                Some(Ok(w)) => Some(Arc::new(w)),
                Some(Err(e)) => {
                    eprintln!("collector-exporter: {e}");
                    return ExitCode::from(2);
                }
            };
            serve(settings, web)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<setup::Misconfigured>() => {
            eprintln!("collector-exporter: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises `RLIMIT_NOFILE`: the collector holds descriptors on the cgroup directories it
/// follows and on a process of each container, within the soft limit less a reserve, and
/// opens files by full path (about twice the CPU) beyond that. Where it may (root, or
/// CAP_SYS_RESOURCE) both limits go up to the kernel's `fs.nr_open`; else the soft one to the
/// hard one, as Go programs (cAdvisor among them) do at start.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, rlim_t, setrlimit, Resource};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<rlim_t>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if nr_open > hard && setrlimit(Resource::RLIMIT_NOFILE, nr_open, nr_open).is_ok() {
        tracing::debug!("open files limit raised from {soft} to {nr_open}");
        return;
    }
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        tracing::debug!("open files limit raised from {soft} to {hard}");
    }
}

/// glibc's malloc gives each thread that allocates an arena of its own, and after a large
/// block (a /metrics body) is freed it raises its mmap threshold, so later bodies come from an
/// arena and stay resident. Two arenas and a fixed threshold keep the resident set near what
/// is in use.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before the threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn init_logging(s: &Settings) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(s.log_level)
        .with_writer(std::io::stderr);
    if s.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn core_config(s: &Settings) -> Config {
    Config {
        roots: Roots {
            proc_root: s.procfs.clone(),
            sys_root: s.sysfs.clone(),
        },
        include: s.include.clone(),
        exclude: s.exclude.clone(),
        runtime_only: s.runtime_only,
        per_cpu: s.per_cpu,
        processes: s.processes,
        process_interval: s.process_interval,
        socket_states: s.socket_states,
        security: collector_core::SecurityConfig {
            policy: s
                .policy
                .as_ref()
                .map(crate::policy::Policy::processes)
                .unwrap_or_default(),
            ..s.security.clone()
        },
        spec_interval: s.spec_interval,
        idle_interval: s.idle_interval,
        hold_files: s.hold_files,
        fs: collector_core::fs::FsConfig {
            rootfs: s.rootfs.clone(),
            interval: s.fs_interval,
            ..Default::default()
        },
        ..Config::default()
    }
}

fn options(s: &Settings) -> Arc<Options> {
    Arc::new(Options {
        label_allowlist: s.label_allowlist.clone(),
    })
}

/// One sweep, printed.
fn snapshot(s: &Settings, format: SnapshotFormat) -> anyhow::Result<()> {
    let (mut c, _) = setup::open(s, core_config(s))?;
    // The writable-layer walks run in the background: let the first ones finish, then sweep
    // again so the figures include them.
    c.sweep();
    c.settle_fs(Duration::from_secs(5));
    let snap = c.sweep();
    for e in &snap.errors {
        tracing::warn!("{e}");
    }
    match format {
        SnapshotFormat::Json => println!("{}", serde_json::to_string_pretty(&snap)?),
        SnapshotFormat::Prometheus => {
            let body =
                collector_core::prometheus::render(&snap, &options(s), Format::PrometheusText);
            print!("{body}");
        }
    }
    Ok(())
}

/// `check`: every row printed; exit 1 when one failed.
fn check(s: &Settings, format: CheckFormat) -> ExitCode {
    let rows = check::run(s, core_config(s));
    match format {
        CheckFormat::Table => check::print_table(&rows),
        CheckFormat::Json => {
            if let Err(e) = check::print_json(&rows) {
                eprintln!("collector-exporter: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if check::passed(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The runtime clients the settings switch on (each optional; absent ones cost nothing).
pub(crate) fn runtime_config(s: &Settings) -> collector_core::runtime::Config {
    use collector_core::runtime::{Config as Rc, ContainerdConfig, CrioConfig, EngineConfig};
    let mut c = Rc::none();
    c.docker = s.docker_socket.clone().map(|p| EngineConfig {
        socket: p,
        ..EngineConfig::docker()
    });
    c.podman = s.podman_socket.clone().map(|p| EngineConfig {
        socket: p,
        ..EngineConfig::podman()
    });
    c.containerd = s.containerd_socket.clone().map(|p| ContainerdConfig {
        socket: p,
        ..ContainerdConfig::default()
    });
    c.crio = s.crio_socket.clone().map(|p| CrioConfig {
        socket: p,
        ..CrioConfig::default()
    });
    c
}

fn serve(s: Settings, web: Option<Arc<webconfig::WebConfig>>) -> anyhow::Result<()> {
    let (mut collector, setup_info) = setup::open(&s, core_config(&s))?;
    tracing::info!(
        setup = ?collector.hierarchy().setup,
        listen = %s.listen_address,
        interval = ?s.interval,
        sinks = s.sinks.len(),
        exec_source = collector.exec_source().name(),
        "starting"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Sinks run as tasks on the server's runtime; the sweep thread feeds them. A remote-write
    // sink pushes the exporter's own series too, once the server's state (which holds the
    // sinks' counters) is made below.
    let own_state: Arc<std::sync::OnceLock<Arc<server::App>>> = Arc::default();
    let own = {
        let state = own_state.clone();
        collector_core::remote_write::ExtraSeries(Arc::new(move |out: &mut String| {
            if let Some(app) = state.get() {
                if let Err(e) = server::encode_own(app, out, Format::PrometheusText) {
                    tracing::debug!("encoding the exporter's own series to push: {e}");
                }
            }
        }))
    };
    let sinks = {
        let _guard = rt.enter();
        sinks::start(&s.sinks, Some(own))?
    };
    let feeds: Vec<SinkFeeder> = sinks.iter().map(|r| r.handle.feeder()).collect();
    let runtimes = collector_core::runtime::Providers::start_on(runtime_config(&s), rt.handle());
    collector.set_metadata_provider(runtimes.clone());
    let procfs = Arc::new(server::ProcSource {
        roots: collector.config().roots.clone(),
        hierarchy: collector.hierarchy().clone(),
        rootfs: s.rootfs.clone(),
    });
    let latest = Arc::new(Latest::default());
    let stats = Arc::new(SweepStats::default());
    let events = Arc::new(state::EventLog::default());
    let violations = Arc::new(state::Violations::default());
    let criticals = Arc::new(state::Criticals::default());
    let history = Arc::new(std::sync::Mutex::new(history::History::new(
        s.ui_history,
        s.interval,
    )));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let sweeper = {
        let (latest, stats, interval, ev) =
            (latest.clone(), stats.clone(), s.interval, events.clone());
        let (policy, vio) = (s.policy.clone(), violations.clone());
        let (critical, crit) = (s.critical.clone(), criticals.clone());
        let hist = history.clone();
        std::thread::Builder::new()
            .name("sweep".into())
            .spawn(move || {
                let out = Outputs {
                    latest,
                    stats,
                    sinks: feeds,
                    events: ev,
                    policy,
                    violations: vio,
                    critical,
                    criticals: crit,
                    history: hist,
                };
                sweep_loop(collector, interval, stop_rx, out)
            })
            .context("starting the sweep thread")?
    };
    let app = Arc::new(server::App {
        latest,
        stats,
        sinks: sinks
            .iter()
            .map(|r| (r.name.clone(), r.kind, r.stats().clone()))
            .collect(),
        runtimes: Some(runtimes.clone()),
        events: events.clone(),
        violations: violations.clone(),
        criticals: criticals.clone(),
        options: options(&s),
        telemetry_path: s.telemetry_path.clone(),
        interval: s.interval,
        procfs,
        setup: Some(Arc::new(setup_info)),
        healthz_without_auth: s.healthz_without_auth,
        connections: connections::Connections::new(s.max_connections, s.write_timeout),
        shared_bodies: shared_body::SharedBodies::default(),
        history,
    });
    let _ = own_state.set(app.clone());
    let served = rt.block_on(listener::serve(app, s.listen_address, web));
    let _ = stop_tx.send(());
    let _ = sweeper.join();
    // Give the sinks, all at once, a moment to deliver what they hold; a spool keeps the
    // rest (its items are on disk as soon as they are queued). So exit comes within
    // SINK_GRACE of the signal however many sinks are down.
    rt.block_on(async {
        let stops: Vec<_> = sinks
            .into_iter()
            .map(|r| tokio::spawn(r.handle.shutdown(SINK_GRACE)))
            .collect();
        for s in stops {
            let _ = s.await;
        }
    });
    tracing::info!("stopped");
    served
}

/// Sweeps on the interval until told to stop. The previous snapshot is reused for the next
/// sweep when no scrape still holds it, so the steady state does not reallocate.
/// Where each sweep's snapshot goes.
struct Outputs {
    latest: Arc<Latest>,
    stats: Arc<SweepStats>,
    sinks: Vec<SinkFeeder>,
    events: Arc<state::EventLog>,
    policy: Option<policy::Policy>,
    violations: Arc<state::Violations>,
    /// Components critical to the cluster, and their containers as of the last sweep.
    critical: Vec<String>,
    criticals: Arc<state::Criticals>,
    history: views::SharedHistory,
}

fn sweep_loop(
    mut collector: Collector,
    interval: Duration,
    stop: mpsc::Receiver<()>,
    out: Outputs,
) {
    let Outputs {
        latest,
        stats,
        sinks,
        events,
        policy,
        violations,
        critical,
        criticals,
        history,
    } = out;
    let mut flagged = std::collections::HashSet::new();
    let mut spare: Option<Snapshot> = None;
    loop {
        let started = Instant::now();
        let mut snap = spare.take().unwrap_or_default();
        collector.sweep_into(&mut snap);
        for e in snap.errors.iter().take(5) {
            tracing::debug!("{e}");
        }
        stats.sweeps.fetch_add(1, Ordering::Relaxed);
        stats
            .errors
            .fetch_add(snap.errors.len() as u64, Ordering::Relaxed);
        stats
            .last_duration_us
            .store(snap.duration_us, Ordering::Relaxed);
        stats
            .containers
            .store(snap.containers.len() as u64, Ordering::Relaxed);
        let idle = snap.containers.iter().filter(|c| c.idle).count();
        stats.idle_containers.store(idle as u64, Ordering::Relaxed);
        stats
            .watch_saturated
            .store(collector.watch_saturated() as u64, Ordering::Relaxed);
        stats.set_resources(collector.resources());
        stats.set_problem(collector.hierarchy_problem());
        *stats
            .security
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((collector.exec_source(), collector.security_counters()));
        let previous = latest.get();
        if let Some(p) = &policy {
            check_policy(p, &mut snap, &mut flagged, &violations);
        }
        criticals.set(find_critical(&critical, &snap));
        events.record(&snap.events);
        for e in &snap.events {
            tracing::info!(event = e.kind.name(), id = %e.id, name = ?e.name, image = ?e.image, count = e.count, "container event");
        }
        views::lock(&history).record(&snap);
        let snap = Arc::new(snap);
        for f in &sinks {
            f.push(snap.clone());
        }
        latest.set(snap);
        spare = previous.and_then(|p| Arc::try_unwrap(p).ok());
        let wait = interval.saturating_sub(started.elapsed());
        match stop.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// The containers running a critical component.
fn find_critical(names: &[String], snap: &Snapshot) -> Vec<state::Critical> {
    if names.is_empty() {
        return Vec::new();
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    snap.containers
        .iter()
        .filter_map(|c| {
            let component = state::critical_component(names, c)?;
            Some(state::Critical {
                component: component.to_string(),
                id: c.id.clone(),
                name: s(&c.meta.name),
                image: s(&c.meta.image),
                namespace: s(&c.meta.namespace),
                pod: s(&c.meta.pod),
                container: s(&c.meta.container),
            })
        })
        .collect()
}

/// Judges every container against the policy; a new offender raises one event.
fn check_policy(
    p: &policy::Policy,
    snap: &mut Snapshot,
    flagged: &mut std::collections::HashSet<String>,
    out: &state::Violations,
) {
    let mut now = Vec::new();
    let mut new_events = Vec::new();
    for c in &snap.containers {
        if let Some(reason) = p.violation(c) {
            if flagged.insert(c.id.clone()) {
                tracing::warn!(id = %c.id, name = ?c.meta.name, image = ?c.meta.image, "policy violation: {reason}");
                new_events.push(collector_core::Event {
                    time_ms: snap.timestamp_ms,
                    kind: policy::VIOLATION,
                    id: c.id.clone(),
                    container_id: c.identity.container_id.clone(),
                    runtime: c.identity.runtime,
                    name: c.meta.name.clone(),
                    image: c.meta.image.clone(),
                    namespace: c.meta.namespace.clone(),
                    pod: c.meta.pod.clone(),
                    count: 1,
                    finding: None,
                });
            }
            now.push(state::Violation {
                id: c.id.clone(),
                name: c.meta.name.clone().unwrap_or_default(),
                image: c.meta.image.clone().unwrap_or_default(),
                reason,
            });
        }
    }
    flagged.retain(|id| now.iter().any(|v| &v.id == id));
    snap.events.extend(new_events);
    out.set(now);
}
