//! Settings from built-in defaults, an optional TOML file and flags, in that order of
//! precedence (a flag wins over the file, the file over the default).
//!
//! Each setting is declared once, in `settings!` below: its flag, its key in the file, its
//! default and its help. The file's keys are the flags' names without the leading dashes,
//! so `--web.listen-address` is `web.listen-address = "..."` (a TOML dotted key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use collector_core::runtime::{ContainerdConfig, CrioConfig, EngineConfig};

use crate::error::{one_line, Error, Result};
use crate::value::{format_duration, parse_duration, parse_listen};

/// Declares the settings: for each, a field of [`Given`] (the flag, from `long`; its key in
/// the file, the same unless `in file` says otherwise; its help, from the doc comment) and
/// its default, an expression over `$d` ([`Defaults`]); without one, the setting is off
/// unless given.
macro_rules! settings {
    (
        defaults from $d:ident;
        $(
            $(#[$attr:meta])*
            $field:ident: $ty:ty = $flag:literal $(in file $key:literal)? $(, default $default:expr)?;
        )*
    ) => {
        /// Each setting where it was given (on the command line, or in the file); `None` when
        /// not given there.
        #[derive(Debug, Default, Clone, Args)]
        pub struct Given {
            $(
                $(#[$attr])*
                #[arg(long = $flag, global = true)]
                pub $field: Option<$ty>,
            )*
        }

        /// Every setting after precedence; those with a default are always there.
        #[derive(Debug)]
        struct Chosen {
            $( $field: settings!(@chosen $ty $(, $default)?), )*
        }

        impl Given {
            /// Each setting's key in the file.
            const KEYS: &[&str] = &[ $( settings!(@key $flag $(, $key)?), )* ];

            /// The settings in a file, from its dotted keys; unknown keys are refused.
            fn from_keys(mut keys: std::collections::BTreeMap<String, toml::Value>) -> Result<Given, String> {
                let given = Given {
                    $( $field: take(&mut keys, settings!(@key $flag $(, $key)?))?, )*
                };
                match keys.into_keys().next() {
                    Some(k) if is_section(&k) => Err(format!("{k:?} must be a table of settings")),
                    Some(k) => Err(unknown_key(&k)),
                    None => Ok(given),
                }
            }

            /// These over `file`, over the defaults.
            fn over(self, file: Given, $d: &Defaults) -> Chosen {
                Chosen {
                    $( $field: settings!(@pick self.$field.or(file.$field) $(, $default)?), )*
                }
            }

            /// (flag id, default) for `--help`.
            fn shown_defaults($d: &Defaults) -> Vec<(&'static str, String)> {
                let mut out: Vec<(&'static str, String)> = Vec::new();
                $( settings!(@show out, $field: $ty $(, $default)?); )*
                out
            }
        }
    };
    (@chosen $ty:ty) => { Option<$ty> };
    (@chosen $ty:ty, $default:expr) => { $ty };
    (@key $flag:literal) => { $flag };
    (@key $flag:literal, $key:literal) => { $key };
    (@pick $v:expr) => { $v };
    (@pick $v:expr, $default:expr) => { $v.unwrap_or_else(|| $default) };
    (@show $out:ident, $field:ident: $ty:ty) => {};
    (@show $out:ident, $field:ident: $ty:ty, $default:expr) => {
        let default: $ty = $default;
        if let Some(s) = default.shown() {
            $out.push((stringify!($field), s));
        }
    };
}

/// Where defaults come from: collector-core's own wherever it has one, so none is written
/// twice.
struct Defaults {
    core: collector_core::Config,
    exposition: collector_core::prometheus::Options,
}

impl Defaults {
    fn new() -> Defaults {
        Defaults {
            core: collector_core::Config::default(),
            exposition: collector_core::prometheus::Options::default(),
        }
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:9338";

/// The control plane and the node's network and DNS: etcd first (the cluster's state).
pub const CRITICAL_DEFAULT: [&str; 6] = [
    "etcd",
    "kube-apiserver",
    "kube-scheduler",
    "kube-controller-manager",
    "coredns",
    "kube-proxy",
];

settings! {
    defaults from d;
    /// Address to listen on.
    listen_address: String = "web.listen-address", default DEFAULT_LISTEN.into();
    /// Path under which to expose metrics.
    telemetry_path: String = "web.telemetry-path", default "/metrics".into();
    /// YAML file enabling TLS and/or basic auth, as for Prometheus exporters [default: none].
    web_config: PathBuf = "web.config.file" in file "web.config-file";
    /// Answer /healthz without the web config's basic auth, for probes that cannot log in
    /// (kubelet's); every other path stays behind it.
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    healthz_without_auth: bool = "web.healthz-without-auth", default false;
    /// Connections served at once. At the limit a new one takes the place of the oldest idle
    /// one (between requests, or still sending its headers); when all are busy it is closed.
    max_connections: usize = "web.max-connections", default crate::connections::DEFAULT_LIMIT;
    /// A client that takes no byte of its answer for this long is cut, e.g. 30s.
    write_timeout: String = "web.write-timeout",
        default format_duration(crate::connections::DEFAULT_STALL);
    /// How far back the web page's charts go (a ring of figures per container, at most 512
    /// points each: finer sweeps are thinned), e.g. 15m; 0 keeps only the latest rates.
    ui_history: String = "web.ui-history", default "15m".into();
    /// How often to read every container, e.g. 1s, 500ms.
    interval: String = "housekeeping.interval", default "5s".into();
    /// How often limits and shares (the spec files) are re-read where writes to them cannot be
    /// watched (no inotify, or past its limit), e.g. 30s. Watched, they are read at the next
    /// sweep after a write and at least every 5 min.
    spec_interval: String = "housekeeping.spec-interval",
        default format_duration(d.core.spec_interval);
    /// How often an idle container (no CPU time, memory or task change since its last full
    /// read) has all its files read; between, only CPU, memory usage, tasks and network
    /// counters are. 0s reads everything every time.
    idle_interval: String = "housekeeping.idle-interval",
        default format_duration(d.core.idle_interval);
    /// Keep each container's cgroup files open between sweeps: about half the CPU, for some
    /// 60 KiB of kernel memory per container.
    #[arg(num_args = 0, default_missing_value = "true")]
    hold_files: bool = "housekeeping.hold-files", default d.core.hold_files;
    /// Where the host's /proc is mounted.
    procfs: PathBuf = "path.procfs", default d.core.roots.proc_root.clone();
    /// Where the host's /sys is mounted.
    sysfs: PathBuf = "path.sysfs", default d.core.roots.sys_root.clone();
    /// Where the host's / is mounted, for containers' writable layers.
    rootfs: PathBuf = "path.rootfs", default d.core.fs.rootfs.clone();
    /// How often each container's writable layer is measured, e.g. 1m.
    fs_interval: String = "fs.interval", default format_duration(d.core.fs.interval);
    /// Only cgroups under this prefix (repeatable) [default: all].
    include: Vec<String> = "cgroups.include", default d.core.include.clone();
    /// Never cgroups under this prefix (repeatable).
    exclude: Vec<String> = "cgroups.exclude", default d.core.exclude.clone();
    /// Report only containers made by a runtime (and the machine), not raw cgroups.
    #[arg(num_args = 0, default_missing_value = "true")]
    runtime_only: bool = "containers.runtime-only", default d.core.runtime_only;
    /// Read and serve per-CPU usage (container_cpu_usage_seconds_total{cpu="cpu00"}, ...),
    /// one series per CPU per container; when off, cpu="total" only.
    #[arg(num_args = 0, default_missing_value = "true")]
    per_cpu: bool = "containers.per-cpu", default d.core.per_cpu;
    /// Read each container's processes, open descriptors and sockets, and its open-files
    /// limit (container_processes, container_file_descriptors, container_sockets,
    /// container_ulimits_soft); `--containers.processes=false` turns it off.
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    processes: bool = "containers.processes", default d.core.processes;
    /// How often a container's process group is read at most (a system call per open
    /// descriptor), e.g. 10s; an idle container's is carried over.
    process_interval: String = "containers.process-interval",
        default format_duration(d.core.process_interval);
    /// Count each container's network namespace's TCP and UDP sockets by state
    /// (container_network_tcp_usage_total{tcp_state}, ...), on the process interval. Each
    /// table read walks the kernel's whole socket hash: 4-6% of a core more at 1,000
    /// containers of which 100 are busy (docs/PERFORMANCE.md).
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    socket_states: bool = "containers.socket-states", default d.core.socket_states;
    /// Judge what runs in containers and whom it talks to: new processes against the miner
    /// and shell rules and the policy, long-lived sockets against the pool ports and the
    /// container's own listening ports (container_security_findings_total{kind},
    /// container_processes_started_total, finding events). Rides on the process group;
    /// `--security.enabled=false` turns it off.
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    security: bool = "security.enabled", default d.core.security.enabled;
    /// Follow every exec as it happens through the kernel's process events (the host's PID
    /// and network namespaces, and CAP_NET_ADMIN on kernels before about 6.6); without them,
    /// new processes are found on the process interval and those shorter than it are missed.
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    exec_events: bool = "security.exec-events", default d.core.security.exec_events;
    /// Listening ports a container opens within this long of first being seen are its own;
    /// later ones are new_listener findings, e.g. 2m.
    listener_learning: String = "security.listener-learning",
        default format_duration(d.core.security.listener_learning);
    /// Peers (address, port, direction) a container meets within this long of first being
    /// seen are its own; later ones are new_peer findings and count in
    /// container_network_new_peers_total, e.g. 10m (at most 24h).
    peer_learning: String = "security.peer-learning",
        default format_duration(d.core.security.peer_learning);
    /// The cluster's address ranges (repeatable; pods, services, nodes), e.g. 10.0.0.0/8: a
    /// peer there that is no container on this node has scope cluster, else external
    /// [default: none].
    cluster_cidrs: Vec<String> = "security.cluster-cidrs", default Vec::new();
    /// More process names taken for miners (repeatable), beside the built-in list.
    extra_miner_names: Vec<String> = "security.extra-miner-names", default Vec::new();
    /// More command-line substrings taken for miners (repeatable), e.g. a pool's domain.
    extra_cmdline_patterns: Vec<String> = "security.extra-cmdline-patterns", default Vec::new();
    /// More remote TCP ports taken for mining pools (repeatable).
    extra_pool_ports: Vec<u16> = "security.extra-pool-ports", default Vec::new();
    /// Runtime label exposed as container_label_<key> (repeatable) [default: none].
    label_allowlist: Vec<String> = "containers.label-allowlist",
        default d.exposition.label_allowlist.clone();
    /// TOML file of allowed images and names; containers outside it are reported.
    policy_file: PathBuf = "containers.policy-file";
    /// Components critical to the cluster (repeatable): a container whose Kubernetes
    /// container name, runtime name or systemd unit is one of them gets a
    /// container_critical{component} series, which the shipped alerts watch.
    critical: Vec<String> = "containers.critical",
        default CRITICAL_DEFAULT.iter().map(|s| s.to_string()).collect();
    /// Docker Engine API socket, or `off`.
    docker_socket: String = "runtime.docker-socket", default EngineConfig::DOCKER_SOCKET.into();
    /// Podman's Docker-compatible API socket, or `off` [default: off].
    podman_socket: String = "runtime.podman-socket";
    /// containerd's API socket, or `off`.
    containerd_socket: String = "runtime.containerd-socket",
        default ContainerdConfig::SOCKET.into();
    /// CRI-O's socket, or `off`.
    crio_socket: String = "runtime.crio-socket", default CrioConfig::SOCKET.into();
    /// error, warn, info, debug or trace.
    log_level: String = "log.level", default "info".into();
    /// human or json.
    log_format: String = "log.format", default "human".into();
}

/// A default as `--help` shows it, if it says anything.
trait Shown {
    fn shown(&self) -> Option<String>;
}

impl Shown for String {
    fn shown(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Shown for PathBuf {
    fn shown(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl Shown for usize {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Shown for bool {
    fn shown(&self) -> Option<String> {
        Some(if *self { "on" } else { "off" }.into())
    }
}

impl Shown for Vec<u16> {
    fn shown(&self) -> Option<String> {
        (!self.is_empty()).then(|| {
            self.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.join(", "))
    }
}

/// The value under `key`, typed, or `None` when the file does not have it.
fn take<T: serde::de::DeserializeOwned>(
    keys: &mut std::collections::BTreeMap<String, toml::Value>,
    key: &str,
) -> std::result::Result<Option<T>, String> {
    keys.remove(key)
        .map(|v| {
            v.try_into()
                .map_err(|e: toml::de::Error| format!("{key}: {}", one_line(e.message())))
        })
        .transpose()
}

#[derive(Debug, Parser)]
#[command(
    name = "collector-exporter",
    version,
    about = "Container resource figures from cgroups, served to Prometheus"
)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The command line, with each setting's default in its help.
pub fn command() -> clap::Command {
    let shown = Given::shown_defaults(&Defaults::new());
    Cli::command().mut_args(|a| match shown.iter().find(|(id, _)| a.get_id() == *id) {
        Some((_, d)) => {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            a.help(format!("{help} [default: {d}]"))
        }
        None => a,
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read every container once, print the result and exit.
    Snapshot {
        #[arg(long, value_enum, default_value_t = SnapshotFormat::Json)]
        format: SnapshotFormat,
    },
    /// Check what the agent can see and reach on this node with these settings (host paths,
    /// cgroups, containers, runtimes, limits, exec events, sinks, web config), print it and
    /// exit non-zero when something asked for cannot work.
    Check {
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormat {
    Json,
    Prometheus,
}

/// The command line's settings: the file's name, and every setting the file can hold.
#[derive(Debug, Default, Args)]
pub struct Flags {
    /// TOML configuration file (optional; every flag can be set there).
    #[arg(long = "config.file", global = true)]
    pub config_file: Option<PathBuf>,
    #[command(flatten)]
    pub given: Given,
}

/// What a config file holds: settings, and the `[[sinks]]` tables for `crate::sinks`.
#[derive(Default)]
struct File {
    given: Given,
    sinks: Vec<toml::Table>,
}

impl File {
    fn load(path: &Path) -> Result<File> {
        let bad =
            |reason: String| Error::new("config.file", format!("{}: {reason}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| bad(one_line(&e.to_string())))?;
        let sinks = match table.remove("sinks") {
            None => Vec::new(),
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| bad(format!("sinks: {}", one_line(e.message()))))?,
        };
        let mut keys = std::collections::BTreeMap::new();
        dotted("", table, &mut keys);
        let given = Given::from_keys(keys).map_err(bad)?;
        Ok(File { given, sinks })
    }
}

/// Whether settings are under `key` (`web` for `web.listen-address`).
/// An unknown key's error: the nearest known key, else those of its section.
fn unknown_key(key: &str) -> String {
    let nearest = Given::KEYS
        .iter()
        .map(|k| (strsim::levenshtein(k, key), *k))
        .min()
        .filter(|(d, k)| *d <= (k.len() / 4).max(2));
    if let Some((_, k)) = nearest {
        return format!("unknown key {key:?}; did you mean {k:?}?");
    }
    let section = key.split_once('.').map_or("", |(s, _)| s);
    let siblings: Vec<&str> = Given::KEYS
        .iter()
        .filter_map(|k| k.strip_prefix(section)?.strip_prefix('.'))
        .collect();
    if section.is_empty() || siblings.is_empty() {
        let sections: std::collections::BTreeSet<&str> = Given::KEYS
            .iter()
            .map(|k| k.split_once('.').map_or(*k, |(s, _)| s))
            .collect();
        let sections: Vec<&str> = sections.into_iter().collect();
        return format!(
            "unknown key {key:?}; settings are under {}",
            sections.join(", ")
        );
    }
    format!(
        "unknown key {key:?}; {section:?} has {}",
        siblings.join(", ")
    )
}

fn is_section(key: &str) -> bool {
    Given::KEYS.iter().any(|k| {
        k.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// `[web]` / `listen-address = ...` and `web.listen-address = ...` alike, as dotted keys.
/// A table is gone into only where settings are under it, so a table given for a setting
/// is refused by its type, and an unknown one by its name.
fn dotted(
    prefix: &str,
    table: toml::Table,
    out: &mut std::collections::BTreeMap<String, toml::Value>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if is_section(&key) => dotted(&key, t, out),
            v => {
                out.insert(key, v);
            }
        }
    }
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_address: std::net::SocketAddr,
    pub telemetry_path: String,
    pub web_config: Option<PathBuf>,
    pub healthz_without_auth: bool,
    pub max_connections: usize,
    pub write_timeout: Duration,
    pub ui_history: Duration,
    pub interval: Duration,
    pub spec_interval: Duration,
    pub idle_interval: Duration,
    pub hold_files: bool,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub runtime_only: bool,
    pub per_cpu: bool,
    pub processes: bool,
    pub process_interval: Duration,
    pub socket_states: bool,
    pub security: collector_core::SecurityConfig,
    pub label_allowlist: Vec<String>,
    pub log_level: tracing::Level,
    pub log_json: bool,
    /// Push sinks from the config file's `[[sinks]]`.
    pub sinks: Vec<crate::sinks::SinkSpec>,
    pub policy: Option<crate::policy::Policy>,
    /// Components whose containers get `container_critical`.
    pub critical: Vec<String>,
    pub rootfs: PathBuf,
    pub fs_interval: Duration,
    /// Runtime sockets; `None` when switched off.
    pub docker_socket: Option<PathBuf>,
    pub podman_socket: Option<PathBuf>,
    pub containerd_socket: Option<PathBuf>,
    pub crio_socket: Option<PathBuf>,
}

/// A duration setting of at most an hour.
fn duration_up_to_1h(key: &str, text: &str) -> Result<Duration> {
    duration_up_to(key, text, Duration::from_secs(3600))
}

fn duration_up_to(key: &str, text: &str, max: Duration) -> Result<Duration> {
    let d = parse_duration(text).map_err(|r| Error::new(key, r))?;
    if d > max {
        return Err(Error::new(
            key,
            format!("{text:?} is over {}", format_duration(max)),
        ));
    }
    Ok(d)
}

/// A runtime's socket, or `None` when switched off (`off`, empty, or no default).
fn socket(given: Option<String>) -> Option<PathBuf> {
    match given.as_deref() {
        None | Some("off") | Some("") => None,
        Some(p) => Some(PathBuf::from(p)),
    }
}

impl Settings {
    /// Merges flags over the file over the defaults, and checks every value.
    pub fn resolve(flags: &Flags) -> Result<Settings> {
        let file = match &flags.config_file {
            Some(p) => File::load(p)?,
            None => File::default(),
        };
        let v = flags.given.clone().over(file.given, &Defaults::new());
        let listen_address =
            parse_listen(&v.listen_address).map_err(|r| Error::new("web.listen-address", r))?;
        let telemetry_path = v.telemetry_path;
        if !telemetry_path.starts_with('/')
            || telemetry_path.starts_with("/api/")
            || telemetry_path.starts_with("/ui/")
            || telemetry_path == "/healthz"
            || telemetry_path == "/"
        {
            return Err(Error::new(
                "web.telemetry-path",
                format!(
                    "{telemetry_path:?} must start with / and not clash with the page (/, /ui/), /healthz or /api/"
                ),
            ));
        }
        let interval =
            parse_duration(&v.interval).map_err(|r| Error::new("housekeeping.interval", r))?;
        if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
            return Err(Error::new(
                "housekeeping.interval",
                format!("{:?} is outside 100ms..1h", v.interval),
            ));
        }
        // A bare 0 (no unit) turns the history off, as the help says.
        let ui_history = match v.ui_history.trim() {
            "0" => Duration::ZERO,
            t => duration_up_to("web.ui-history", t, Duration::from_secs(24 * 3600))?,
        };
        let spec_interval = duration_up_to_1h("housekeeping.spec-interval", &v.spec_interval)?;
        let idle_interval = duration_up_to_1h("housekeeping.idle-interval", &v.idle_interval)?;
        let process_interval =
            duration_up_to_1h("containers.process-interval", &v.process_interval)?;
        let fs_interval =
            parse_duration(&v.fs_interval).map_err(|r| Error::new("fs.interval", r))?;
        if fs_interval < Duration::from_secs(1) {
            return Err(Error::new(
                "fs.interval",
                format!("{:?} is under 1s", v.fs_interval),
            ));
        }
        for (key, p) in [
            ("path.procfs", &v.procfs),
            ("path.sysfs", &v.sysfs),
            ("path.rootfs", &v.rootfs),
        ] {
            if !p.is_dir() {
                return Err(Error::new(
                    key,
                    format!("{} is not a directory", p.display()),
                ));
            }
        }
        for (key, list) in [
            ("cgroups.include", &v.include),
            ("cgroups.exclude", &v.exclude),
        ] {
            if let Some(p) = list.iter().find(|p| !p.starts_with('/')) {
                return Err(Error::new(
                    key,
                    format!("{p:?} must be a cgroup path starting with /"),
                ));
            }
        }
        if let Some(k) = v.label_allowlist.iter().find(|k| k.is_empty()) {
            return Err(Error::new(
                "containers.label-allowlist",
                format!("{k:?}: empty label key"),
            ));
        }
        let log_level = v.log_level.parse::<tracing::Level>().map_err(|_| {
            Error::new(
                "log.level",
                format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    v.log_level
                ),
            )
        })?;
        let log_json = match v.log_format.as_str() {
            "human" => false,
            "json" => true,
            other => {
                return Err(Error::new(
                    "log.format",
                    format!("{other:?} is not human or json"),
                ))
            }
        };
        let exposition = collector_core::prometheus::Options {
            label_allowlist: v.label_allowlist.clone(),
        };
        let sinks = crate::sinks::parse(&file.sinks, &exposition)?;
        let mut security = collector_core::SecurityConfig {
            enabled: v.security,
            exec_events: v.exec_events,
            listener_learning: duration_up_to_1h(
                "security.listener-learning",
                &v.listener_learning,
            )?,
            peer_learning: duration_up_to(
                "security.peer-learning",
                &v.peer_learning,
                Duration::from_secs(24 * 3600),
            )?,
            cluster_cidrs: v
                .cluster_cidrs
                .iter()
                .map(|c| {
                    c.trim()
                        .parse()
                        .map_err(|e| Error::new("security.cluster-cidrs", format!("{c:?}: {e}")))
                })
                .collect::<Result<_>>()?,
            ..collector_core::SecurityConfig::default()
        };
        let extra = collector_core::security::Rules {
            miner_names: v.extra_miner_names,
            cmdline_patterns: v.extra_cmdline_patterns,
            pool_ports: v.extra_pool_ports,
            shells: Vec::new(),
        };
        for (key, list) in [
            ("security.extra-miner-names", &extra.miner_names),
            ("security.extra-cmdline-patterns", &extra.cmdline_patterns),
        ] {
            if let Some(bad) = list.iter().find(|x| x.trim().is_empty()) {
                return Err(Error::new(
                    key,
                    format!("{bad:?}: an empty name or pattern would match everything"),
                ));
            }
        }
        security.rules.extend(extra);
        let policy = match &v.policy_file {
            Some(p) => Some(
                crate::policy::Policy::load(p)
                    .map_err(|r| Error::new("containers.policy-file", r))?,
            ),
            None => None,
        };
        Ok(Settings {
            listen_address,
            telemetry_path,
            web_config: v.web_config,
            healthz_without_auth: v.healthz_without_auth,
            max_connections: match v.max_connections {
                0 => {
                    return Err(Error::new(
                        "web.max-connections",
                        "must be at least 1".to_string(),
                    ))
                }
                n => n,
            },
            write_timeout: match duration_up_to_1h("web.write-timeout", &v.write_timeout)? {
                d if d.is_zero() => {
                    return Err(Error::new(
                        "web.write-timeout",
                        "must be above 0".to_string(),
                    ))
                }
                d => d,
            },
            ui_history,
            interval,
            spec_interval,
            idle_interval,
            hold_files: v.hold_files,
            procfs: v.procfs,
            sysfs: v.sysfs,
            include: v.include,
            exclude: v.exclude,
            runtime_only: v.runtime_only,
            per_cpu: v.per_cpu,
            processes: v.processes,
            process_interval,
            socket_states: v.socket_states,
            security,
            label_allowlist: v.label_allowlist,
            log_level,
            log_json,
            sinks,
            policy,
            critical: v.critical.into_iter().filter(|c| !c.is_empty()).collect(),
            rootfs: v.rootfs,
            fs_interval,
            docker_socket: socket(Some(v.docker_socket)),
            podman_socket: socket(v.podman_socket),
            containerd_socket: socket(Some(v.containerd_socket)),
            crio_socket: socket(Some(v.crio_socket)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags::default()
    }

    #[test]
    fn defaults_without_a_file() {
        let s = Settings::resolve(&flags()).unwrap();
        assert_eq!(s.listen_address.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.telemetry_path, "/metrics");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert!(!s.runtime_only && s.label_allowlist.is_empty());
        assert_eq!(s.ui_history, Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_page_history_and_paths_it_keeps() {
        let mut f = flags();
        f.given.ui_history = Some("0".into());
        assert_eq!(Settings::resolve(&f).unwrap().ui_history, Duration::ZERO);
        f.given.ui_history = Some("2d".into());
        assert!(Settings::resolve(&f).is_err());
        for p in ["/", "/ui/metrics"] {
            let mut f = flags();
            f.given.telemetry_path = Some(p.into());
            assert!(Settings::resolve(&f).is_err(), "{p}");
        }
    }

    #[test]
    fn flag_over_file_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "web.listen-address = \"127.0.0.1:1234\"\nhousekeeping.interval = \"2s\"\n[cgroups]\ninclude = [\"/docker\"]\n",
        )
        .unwrap();
        let mut f = flags();
        f.config_file = Some(p);
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.listen_address.to_string(), "127.0.0.1:1234");
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.spec_interval, Duration::from_secs(30), "the default");
        assert_eq!(s.idle_interval, Duration::from_secs(60), "the default");
        assert_eq!(s.include, vec!["/docker".to_string()]);
        f.given.interval = Some("750ms".into());
        f.given.spec_interval = Some("5s".into());
        f.given.idle_interval = Some("0s".into());
        f.given.include = Some(vec!["/kubepods".into()]);
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.interval, Duration::from_millis(750));
        assert_eq!(s.spec_interval, Duration::from_secs(5));
        assert_eq!(s.idle_interval, Duration::ZERO);
        assert_eq!(s.include, vec!["/kubepods".to_string()]);
    }

    #[test]
    fn peer_settings_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "security.peer-learning = \"30m\"\nsecurity.cluster-cidrs = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let mut f = flags();
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(
            s.security.peer_learning,
            Duration::from_secs(600),
            "the default"
        );
        assert!(s.security.cluster_cidrs.is_empty());
        f.config_file = Some(p);
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.security.peer_learning, Duration::from_secs(1800));
        let cidrs: Vec<String> = s
            .security
            .cluster_cidrs
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(cidrs, ["10.0.0.0/8", "fd00::/8"]);
    }

    #[test]
    fn web_config_file_from_flag_or_file() {
        assert_eq!(Settings::resolve(&flags()).unwrap().web_config, None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "web.config-file = \"/etc/web.yml\"\n").unwrap();
        let mut f = flags();
        f.config_file = Some(p);
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.web_config, Some(PathBuf::from("/etc/web.yml")));
        f.given.web_config = Some("/tmp/w.yml".into());
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.web_config, Some(PathBuf::from("/tmp/w.yml")));
    }

    #[test]
    fn bad_values_name_the_key() {
        type Case = (Box<dyn Fn(&mut Flags)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Box::new(|f| f.given.interval = Some("soon".into())),
                "housekeeping.interval",
            ),
            (
                Box::new(|f| f.given.interval = Some("10ms".into())),
                "housekeeping.interval",
            ),
            (
                Box::new(|f| f.given.spec_interval = Some("2h".into())),
                "housekeeping.spec-interval",
            ),
            (
                Box::new(|f| f.given.spec_interval = Some("often".into())),
                "housekeeping.spec-interval",
            ),
            (
                Box::new(|f| f.given.idle_interval = Some("2h".into())),
                "housekeeping.idle-interval",
            ),
            (
                Box::new(|f| f.given.idle_interval = Some("-1s".into())),
                "housekeeping.idle-interval",
            ),
            (
                Box::new(|f| f.given.listen_address = Some("nowhere".into())),
                "web.listen-address",
            ),
            (
                Box::new(|f| f.given.process_interval = Some("2h".into())),
                "containers.process-interval",
            ),
            (
                Box::new(|f| f.given.process_interval = Some("0".into())),
                "containers.process-interval",
            ),
            (
                Box::new(|f| f.given.telemetry_path = Some("metrics".into())),
                "web.telemetry-path",
            ),
            (
                Box::new(|f| f.given.procfs = Some("/nonexistent".into())),
                "path.procfs",
            ),
            (
                Box::new(|f| f.given.include = Some(vec!["docker".into()])),
                "cgroups.include",
            ),
            (
                Box::new(|f| f.given.log_level = Some("loud".into())),
                "log.level",
            ),
            (
                Box::new(|f| f.given.log_format = Some("xml".into())),
                "log.format",
            ),
            (
                Box::new(|f| f.given.peer_learning = Some("25h".into())),
                "security.peer-learning",
            ),
            (
                Box::new(|f| f.given.cluster_cidrs = Some(vec!["10.0.0.0".into()])),
                "security.cluster-cidrs",
            ),
        ];
        for (set, key) in cases {
            let mut f = flags();
            set(&mut f);
            let e = Settings::resolve(&f).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "web.listen-adress = \":1\"\n").unwrap();
        let mut f = flags();
        f.config_file = Some(p);
        let e = Settings::resolve(&f).unwrap_err();
        assert_eq!(e.key, "config.file");
        assert!(e.reason.contains("listen-adress"), "{e}");
        assert!(
            e.reason.contains("did you mean \"web.listen-address\""),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn an_unknown_key_names_what_is_there() {
        assert!(unknown_key("security.enable").contains("did you mean \"security.enabled\""));
        let e = unknown_key("security.paranoia");
        assert!(e.contains("\"security\" has enabled, exec-events"), "{e}");
        let e = unknown_key("nonsense");
        assert!(
            e.contains("settings are under") && e.contains("security"),
            "{e}"
        );
    }

    #[test]
    fn file_shapes_and_help_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let mut f = flags();
        f.config_file = Some(p.clone());
        std::fs::write(&p, "[housekeeping]\nhold-files = true\n[web]\n").unwrap();
        assert!(Settings::resolve(&f).unwrap().hold_files);
        let text =
            "[containers]\nprocesses = false\nsocket-states = true\nprocess-interval = \"3s\"\n";
        std::fs::write(&p, text).unwrap();
        let s = Settings::resolve(&f).unwrap();
        assert!(!s.processes && s.socket_states);
        assert_eq!(s.process_interval, Duration::from_secs(3));
        let core = crate::core_config(&s);
        assert!(!core.processes && core.socket_states);
        assert_eq!(core.process_interval, Duration::from_secs(3));
        for text in [
            "web = 3\n",
            "[nope]\n",
            "housekeeping.hold-files = \"yes\"\n",
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Settings::resolve(&f).unwrap_err();
            assert_eq!(e.key, "config.file", "{text}: {e}");
        }
        let help = command().render_long_help().to_string();
        let spec = format_duration(collector_core::Config::default().spec_interval);
        assert!(help.contains(&format!("[default: {spec}]")), "{help}");
    }
}
