//! Opening the collector on the host paths the flags name, after checking what they hold
//! (`collector_core::preflight`): a path that cannot work stops the exporter with one line
//! naming its flag; one that works in part is one warning line and `collector_setup_info`.

use collector_core::preflight::{self, Verdict};
use collector_core::{Collector, Config, Setup};

use crate::config::Settings;

/// A host path that cannot work: the message names the flag, what was found and what was
/// expected. The exporter exits with code 2 on it, as on any bad setting.
#[derive(Debug)]
pub struct Misconfigured(pub String);

impl std::fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Misconfigured {}

/// What the agent can see, for `collector_setup_info`.
#[derive(Debug, Clone)]
pub struct SetupInfo {
    pub setup: Setup,
    pub procfs: Verdict,
    pub sysfs: Verdict,
    pub rootfs: Verdict,
    /// Where new processes are learnt from (`process_events`, `polling`, `off`).
    pub exec_events: &'static str,
}

impl SetupInfo {
    /// `true`, `false` (partly or not at all) or `unknown` (not checked), per path.
    pub fn ok_label(v: &Verdict) -> &'static str {
        match v {
            Verdict::Ok(_) => "true",
            Verdict::Unknown(_) => "unknown",
            Verdict::Partial(_) | Verdict::Fatal(_) => "false",
        }
    }
}

/// The collector on `config` (made from `s`), once its paths are checked.
pub fn open(s: &Settings, config: Config) -> Result<(Collector, SetupInfo), Misconfigured> {
    let flag = |name: &str, path: &std::path::Path, detail: &str| {
        format!("--{name}={}: {detail}", path.display())
    };
    let procfs = preflight::procfs(&s.procfs);
    if let Verdict::Fatal(d) = &procfs {
        return Err(Misconfigured(flag("path.procfs", &s.procfs, d)));
    }
    let layers = config.fs.container_layers;
    let collector = Collector::new(config).map_err(|e| {
        Misconfigured(flag(
            "path.sysfs",
            &s.sysfs,
            &format!("{e}; expected the host's /sys with its cgroup mounts"),
        ))
    })?;
    let sysfs = preflight::sysfs(collector.hierarchy());
    if let Verdict::Fatal(d) = &sysfs {
        return Err(Misconfigured(flag("path.sysfs", &s.sysfs, d)));
    }
    let rootfs = if layers {
        preflight::rootfs(&s.procfs, &s.rootfs)
    } else {
        Verdict::Unknown("writable layers are not read".into())
    };
    for (name, path, v) in [
        ("path.procfs", &s.procfs, &procfs),
        ("path.sysfs", &s.sysfs, &sysfs),
        ("path.rootfs", &s.rootfs, &rootfs),
    ] {
        if let Verdict::Partial(d) = v {
            tracing::warn!("{}", flag(name, path, d));
        }
    }
    let info = SetupInfo {
        setup: collector.hierarchy().setup,
        procfs,
        sysfs,
        rootfs,
        exec_events: collector.exec_source().name(),
    };
    Ok((collector, info))
}
