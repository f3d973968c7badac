//! Settings from built-in defaults, an optional TOML file and flags, in that order of
//! precedence (a flag wins over the file, the file over the default).
//!
//! The file's keys are the flags' names without the leading dashes, so
//! `--web.listen-address` is `web.listen-address = "..."` (a TOML dotted key).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:9338";

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read every container once, print the result and exit.
    Snapshot {
        #[arg(long, value_enum, default_value_t = SnapshotFormat::Json)]
        format: SnapshotFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormat {
    Json,
    Prometheus,
}

/// Every flag is optional here so that "not given" can fall back to the file.
#[derive(Debug, Default, Args)]
pub struct Flags {
    /// TOML configuration file (optional; every flag can be set there).
    #[arg(long = "config.file", global = true)]
    pub config_file: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:9338].
    #[arg(long = "web.listen-address", global = true)]
    pub listen_address: Option<String>,
    /// Path under which to expose metrics [default: /metrics].
    #[arg(long = "web.telemetry-path", global = true)]
    pub telemetry_path: Option<String>,
    /// YAML file enabling TLS and/or basic auth, as for Prometheus exporters [default: none].
    #[arg(long = "web.config.file", global = true)]
    pub web_config: Option<PathBuf>,
    /// How often to read every container, e.g. 1s, 500ms [default: 5s].
    #[arg(long = "housekeeping.interval", global = true)]
    pub interval: Option<String>,
    /// How often limits and shares (the spec files) are re-read where writes to them cannot be
    /// watched (no inotify, or past its limit), e.g. 30s [default: 30s]. Watched, they are read
    /// at the next sweep after a write and at least every 5 min.
    #[arg(long = "housekeeping.spec-interval", global = true)]
    pub spec_interval: Option<String>,
    /// How often an idle container (no CPU time, memory or task change since its last full
    /// read) has all its files read; between, only CPU, memory usage, tasks and network
    /// counters are. 0s reads everything every time [default: 60s].
    #[arg(long = "housekeeping.idle-interval", global = true)]
    pub idle_interval: Option<String>,
    /// Keep each container's cgroup files open between sweeps: about half the CPU, for some
    /// 60 KiB of kernel memory per container [default: off].
    #[arg(long = "housekeeping.hold-files", global = true)]
    pub hold_files: bool,
    /// Where the host's /proc is mounted [default: /proc].
    #[arg(long = "path.procfs", global = true)]
    pub procfs: Option<PathBuf>,
    /// Where the host's /sys is mounted [default: /sys].
    #[arg(long = "path.sysfs", global = true)]
    pub sysfs: Option<PathBuf>,
    /// Where the host's / is mounted, for containers' writable layers [default: /].
    #[arg(long = "path.rootfs", global = true)]
    pub rootfs: Option<PathBuf>,
    /// How often each container's writable layer is measured, e.g. 1m [default: 1m].
    #[arg(long = "fs.interval", global = true)]
    pub fs_interval: Option<String>,
    /// Only cgroups under this prefix (repeatable) [default: all].
    #[arg(long = "cgroups.include", global = true)]
    pub include: Vec<String>,
    /// Never cgroups under this prefix (repeatable).
    #[arg(long = "cgroups.exclude", global = true)]
    pub exclude: Vec<String>,
    /// Report only containers made by a runtime (and the machine), not raw cgroups.
    #[arg(long = "containers.runtime-only", global = true)]
    pub runtime_only: bool,
    /// Read and serve per-CPU usage (container_cpu_usage_seconds_total{cpu="cpu00"}, ...),
    /// one series per CPU per container [default: off, cpu="total" only].
    #[arg(long = "containers.per-cpu", global = true)]
    pub per_cpu: bool,
    /// Runtime label exposed as container_label_<key> (repeatable) [default: none].
    #[arg(long = "containers.label-allowlist", global = true)]
    pub label_allowlist: Vec<String>,
    /// TOML file of allowed images and names; containers outside it are reported.
    #[arg(long = "containers.policy-file", global = true)]
    pub policy_file: Option<PathBuf>,
    /// Docker Engine API socket, or `off` [default: /var/run/docker.sock].
    #[arg(long = "runtime.docker-socket", global = true)]
    pub docker_socket: Option<String>,
    /// Podman's Docker-compatible API socket, or `off` [default: off].
    #[arg(long = "runtime.podman-socket", global = true)]
    pub podman_socket: Option<String>,
    /// containerd's API socket, or `off` [default: /run/containerd/containerd.sock].
    #[arg(long = "runtime.containerd-socket", global = true)]
    pub containerd_socket: Option<String>,
    /// CRI-O's socket, or `off` [default: /var/run/crio/crio.sock].
    #[arg(long = "runtime.crio-socket", global = true)]
    pub crio_socket: Option<String>,
    /// error, warn, info, debug or trace [default: info].
    #[arg(long = "log.level", global = true)]
    pub log_level: Option<String>,
    /// human or json [default: human].
    #[arg(long = "log.format", global = true)]
    pub log_format: Option<String>,
}

/// The file's shape. Unknown keys are refused, so a typo is caught, not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub web: FileWeb,
    #[serde(default)]
    pub housekeeping: FileHousekeeping,
    #[serde(default)]
    pub path: FilePath,
    #[serde(default)]
    pub cgroups: FileCgroups,
    #[serde(default)]
    pub containers: FileContainers,
    #[serde(default)]
    pub log: FileLog,
    #[serde(default)]
    pub runtime: FileRuntime,
    #[serde(default)]
    pub fs: FileFs,
    /// `[[sinks]]`, parsed by `crate::sinks`.
    #[serde(default)]
    pub sinks: Vec<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWeb {
    #[serde(rename = "listen-address")]
    pub listen_address: Option<String>,
    #[serde(rename = "telemetry-path")]
    pub telemetry_path: Option<String>,
    #[serde(rename = "config-file")]
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHousekeeping {
    pub interval: Option<String>,
    #[serde(rename = "spec-interval")]
    pub spec_interval: Option<String>,
    #[serde(rename = "idle-interval")]
    pub idle_interval: Option<String>,
    #[serde(rename = "hold-files")]
    pub hold_files: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePath {
    pub procfs: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub rootfs: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFs {
    pub interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCgroups {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileContainers {
    #[serde(rename = "runtime-only")]
    pub runtime_only: Option<bool>,
    #[serde(rename = "per-cpu")]
    pub per_cpu: Option<bool>,
    #[serde(rename = "label-allowlist")]
    pub label_allowlist: Option<Vec<String>>,
    #[serde(rename = "policy-file")]
    pub policy_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRuntime {
    #[serde(rename = "docker-socket")]
    pub docker_socket: Option<String>,
    #[serde(rename = "podman-socket")]
    pub podman_socket: Option<String>,
    #[serde(rename = "containerd-socket")]
    pub containerd_socket: Option<String>,
    #[serde(rename = "crio-socket")]
    pub crio_socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_address: std::net::SocketAddr,
    pub telemetry_path: String,
    pub web_config: Option<PathBuf>,
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
    pub label_allowlist: Vec<String>,
    pub log_level: tracing::Level,
    pub log_json: bool,
    /// Push sinks from the config file's `[[sinks]]`.
    pub sinks: Vec<crate::sinks::SinkSpec>,
    pub policy: Option<crate::policy::Policy>,
    pub rootfs: PathBuf,
    pub fs_interval: Duration,
    /// Runtime sockets; `None` when switched off.
    pub docker_socket: Option<PathBuf>,
    pub podman_socket: Option<PathBuf>,
    pub containerd_socket: Option<PathBuf>,
    pub crio_socket: Option<PathBuf>,
}

/// A bad setting: which key, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.key, self.reason)
    }
}

/// A duration setting (`text`, else `default`) of at most an hour.
fn duration_up_to_1h(
    key: &str,
    text: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or_else(|| default.into());
    let d = parse_duration(&text).map_err(|r| bad(key, r))?;
    if d > Duration::from_secs(3600) {
        return Err(bad(key, format!("{text:?} is over 1h")));
    }
    Ok(d)
}

fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl Settings {
    /// Merges flags over the file over the defaults, and checks every value.
    pub fn resolve(flags: &Flags) -> Result<Settings, ConfigError> {
        let file = match &flags.config_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| bad("config.file", format!("{}: {e}", p.display())))?;
                toml::from_str::<File>(&text).map_err(|e| {
                    bad(
                        "config.file",
                        format!("{}: {}", p.display(), one_line(&e.to_string())),
                    )
                })?
            }
            None => File::default(),
        };
        let listen = flags
            .listen_address
            .clone()
            .or(file.web.listen_address)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen_address = parse_listen(&listen).map_err(|r| bad("web.listen-address", r))?;
        let telemetry_path = flags
            .telemetry_path
            .clone()
            .or(file.web.telemetry_path)
            .unwrap_or_else(|| "/metrics".into());
        if !telemetry_path.starts_with('/')
            || telemetry_path.starts_with("/api/")
            || telemetry_path == "/healthz"
        {
            return Err(bad(
                "web.telemetry-path",
                format!(
                    "{telemetry_path:?} must start with / and not clash with /healthz or /api/"
                ),
            ));
        }
        let web_config = flags.web_config.clone().or(file.web.config_file);
        let interval_text = flags
            .interval
            .clone()
            .or(file.housekeeping.interval)
            .unwrap_or_else(|| "5s".into());
        let interval =
            parse_duration(&interval_text).map_err(|r| bad("housekeeping.interval", r))?;
        if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
            return Err(bad(
                "housekeeping.interval",
                format!("{interval_text:?} is outside 100ms..1h"),
            ));
        }
        let spec_interval = duration_up_to_1h(
            "housekeeping.spec-interval",
            flags
                .spec_interval
                .clone()
                .or(file.housekeeping.spec_interval),
            "30s",
        )?;
        let idle_interval = duration_up_to_1h(
            "housekeeping.idle-interval",
            flags
                .idle_interval
                .clone()
                .or(file.housekeeping.idle_interval),
            "60s",
        )?;
        let procfs = flags
            .procfs
            .clone()
            .or(file.path.procfs)
            .unwrap_or_else(|| "/proc".into());
        let sysfs = flags
            .sysfs
            .clone()
            .or(file.path.sysfs)
            .unwrap_or_else(|| "/sys".into());
        let rootfs = flags
            .rootfs
            .clone()
            .or(file.path.rootfs)
            .unwrap_or_else(|| "/".into());
        let fs_text = flags
            .fs_interval
            .clone()
            .or(file.fs.interval)
            .unwrap_or_else(|| "1m".into());
        let fs_interval = parse_duration(&fs_text).map_err(|r| bad("fs.interval", r))?;
        if fs_interval < Duration::from_secs(1) {
            return Err(bad("fs.interval", format!("{fs_text:?} is under 1s")));
        }
        for (key, p) in [
            ("path.procfs", &procfs),
            ("path.sysfs", &sysfs),
            ("path.rootfs", &rootfs),
        ] {
            if !p.is_dir() {
                return Err(bad(key, format!("{} is not a directory", p.display())));
            }
        }
        let pick = |flag: &Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let include = pick(&flags.include, file.cgroups.include);
        let exclude = pick(&flags.exclude, file.cgroups.exclude);
        for (key, list) in [("cgroups.include", &include), ("cgroups.exclude", &exclude)] {
            if let Some(p) = list.iter().find(|p| !p.starts_with('/')) {
                return Err(bad(
                    key,
                    format!("{p:?} must be a cgroup path starting with /"),
                ));
            }
        }
        let label_allowlist = pick(&flags.label_allowlist, file.containers.label_allowlist);
        if let Some(k) = label_allowlist.iter().find(|k| k.is_empty()) {
            return Err(bad(
                "containers.label-allowlist",
                format!("{k:?}: empty label key"),
            ));
        }
        let level_text = flags
            .log_level
            .clone()
            .or(file.log.level)
            .unwrap_or_else(|| "info".into());
        let log_level = level_text.parse::<tracing::Level>().map_err(|_| {
            bad(
                "log.level",
                format!("{level_text:?} is not one of error, warn, info, debug, trace"),
            )
        })?;
        let format_text = flags
            .log_format
            .clone()
            .or(file.log.format)
            .unwrap_or_else(|| "human".into());
        let log_json = match format_text.as_str() {
            "human" => false,
            "json" => true,
            other => return Err(bad("log.format", format!("{other:?} is not human or json"))),
        };
        let sinks = crate::sinks::parse(&file.sinks)?;
        let policy = match flags.policy_file.clone().or(file.containers.policy_file) {
            Some(p) => Some(
                crate::policy::Policy::load(&p).map_err(|r| bad("containers.policy-file", r))?,
            ),
            None => None,
        };
        let socket = |flag: &Option<String>, file: Option<String>, default: Option<&str>| match flag
            .clone()
            .or(file)
            .as_deref()
            .or(default)
        {
            None | Some("off") | Some("") => None,
            Some(p) => Some(PathBuf::from(p)),
        };
        let docker_socket = socket(
            &flags.docker_socket,
            file.runtime.docker_socket,
            Some("/var/run/docker.sock"),
        );
        let podman_socket = socket(&flags.podman_socket, file.runtime.podman_socket, None);
        let containerd_socket = socket(
            &flags.containerd_socket,
            file.runtime.containerd_socket,
            Some("/run/containerd/containerd.sock"),
        );
        let crio_socket = socket(
            &flags.crio_socket,
            file.runtime.crio_socket,
            Some("/var/run/crio/crio.sock"),
        );
        Ok(Settings {
            listen_address,
            telemetry_path,
            web_config,
            interval,
            spec_interval,
            idle_interval,
            hold_files: flags.hold_files || file.housekeeping.hold_files.unwrap_or(false),
            procfs,
            sysfs,
            include,
            exclude,
            runtime_only: flags.runtime_only || file.containers.runtime_only.unwrap_or(false),
            per_cpu: flags.per_cpu || file.containers.per_cpu.unwrap_or(false),
            label_allowlist,
            log_level,
            log_json,
            sinks,
            policy,
            rootfs,
            fs_interval,
            docker_socket,
            podman_socket,
            containerd_socket,
            crio_socket,
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `host:port`, `:port` (all interfaces) or `[v6]:port`.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("{s:?} is not host:port (e.g. 0.0.0.0:9338, 127.0.0.1:9338, :9338)"))
}

/// `500ms`, `1s`, `2m`, `1h`, or combinations like `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration like 500ms, 10s, 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(err()),
        };
        total = total.saturating_add(d);
        rest = &rest[unit_len..];
    }
    Ok(total)
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
        f.interval = Some("750ms".into());
        f.spec_interval = Some("5s".into());
        f.idle_interval = Some("0s".into());
        f.include = vec!["/kubepods".into()];
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.interval, Duration::from_millis(750));
        assert_eq!(s.spec_interval, Duration::from_secs(5));
        assert_eq!(s.idle_interval, Duration::ZERO);
        assert_eq!(s.include, vec!["/kubepods".to_string()]);
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
        f.web_config = Some("/tmp/w.yml".into());
        let s = Settings::resolve(&f).unwrap();
        assert_eq!(s.web_config, Some(PathBuf::from("/tmp/w.yml")));
    }

    #[test]
    fn bad_values_name_the_key() {
        type Case = (Box<dyn Fn(&mut Flags)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Box::new(|f| f.interval = Some("soon".into())),
                "housekeeping.interval",
            ),
            (
                Box::new(|f| f.interval = Some("10ms".into())),
                "housekeeping.interval",
            ),
            (
                Box::new(|f| f.spec_interval = Some("2h".into())),
                "housekeeping.spec-interval",
            ),
            (
                Box::new(|f| f.spec_interval = Some("often".into())),
                "housekeeping.spec-interval",
            ),
            (
                Box::new(|f| f.idle_interval = Some("2h".into())),
                "housekeeping.idle-interval",
            ),
            (
                Box::new(|f| f.idle_interval = Some("-1s".into())),
                "housekeeping.idle-interval",
            ),
            (
                Box::new(|f| f.listen_address = Some("nowhere".into())),
                "web.listen-address",
            ),
            (
                Box::new(|f| f.telemetry_path = Some("metrics".into())),
                "web.telemetry-path",
            ),
            (
                Box::new(|f| f.procfs = Some("/nonexistent".into())),
                "path.procfs",
            ),
            (
                Box::new(|f| f.include = vec!["docker".into()]),
                "cgroups.include",
            ),
            (Box::new(|f| f.log_level = Some("loud".into())), "log.level"),
            (
                Box::new(|f| f.log_format = Some("xml".into())),
                "log.format",
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
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "s", "1", "1x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_listen(":9"), Ok("0.0.0.0:9".parse().unwrap()));
        assert!(parse_listen("[::1]:9").is_ok());
    }
}
