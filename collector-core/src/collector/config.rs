//! What to collect and where from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hierarchy::Roots;
use crate::security::{ProcessPolicy, Rules};

/// What to collect and where from. Every field has a default (`Config::default()` is what
/// the exporter runs with); set those you need. It (de)serializes with serde, durations as
/// `{ secs, nanos }`.
///
/// What the defaults hold, all reported by [`Collector::resources`](crate::Collector::resources)
/// and let go on drop: two inotify instances (`watch`); descriptors within the process's
/// shared budget (`descriptor_budget`); `fs.workers` walker threads once the first overlay
/// layer is met (`fs.container_layers`); a thread on the kernel's process events where this
/// process may subscribe (`security.exec_events`). Turn off what you do not want.
///
/// ```
/// use std::time::Duration;
/// use collector_core::{Collector, Config, Roots};
///
/// let config = Config {
///     // The host's /proc and /sys as a container sees them when mounted under /host;
///     // here this machine's own.
///     roots: Roots::default(),
///     // Docker, containerd, CRI-O and Podman containers and pods only.
///     runtime_only: true,
///     // No writable-layer walker threads, no process or socket walks.
///     fs: collector_core::fs::FsConfig { container_layers: false, ..Default::default() },
///     processes: false,
///     // Read an idle container in full at least every 30 s.
///     idle_interval: Duration::from_secs(30),
///     ..Config::default()
/// };
/// let collector = Collector::new(config)?;
/// assert_eq!(collector.resources().walker_threads, 0);
/// assert!(!collector.resources().exec_watch);
/// # Ok::<(), collector_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the host's `/proc` and `/sys` are.
    pub roots: Roots,
    /// Only cgroups under these prefixes (all when empty).
    pub include: Vec<String>,
    /// Never cgroups under these prefixes.
    pub exclude: Vec<String>,
    /// Follow only the machine (`/`), runtime containers and Kubernetes pods; skip raw cgroups
    /// and systemd units (cAdvisor's `docker_only`).
    pub runtime_only: bool,
    /// Standalone containerd's namespaces (`/<namespace>/<id>` cgroups).
    pub containerd_namespaces: Vec<String>,
    /// Full rescan of the hierarchies at least this often when inotify is off or past its
    /// watch limit (new cgroups are then found by rescans only).
    pub rescan_interval: Duration,
    /// The same while inotify follows every directory of the watched hierarchy. The rescan is
    /// then a backstop for cgroups made in an unwatched v1 hierarchy alone (a systemd unit
    /// with only some controllers on); a walk of every hierarchy costs about 50 us per cgroup.
    pub watched_rescan_interval: Duration,
    /// Limits and shares (the spec files) are re-read this often, and when a container is
    /// new; between, the last values are reported. They change only on an update.
    pub spec_interval: Duration,
    /// The same while inotify watches the directories a container's spec is read from: a
    /// write to any file in them (an update) has the spec read at the next sweep, and this
    /// backstop covers what no write announces (a v1 cpuset trimmed by its parent's, CPU
    /// hotplug). See `specwatch.rs`.
    pub watched_spec_interval: Duration,
    /// A container that has done nothing since its last full read (no CPU time, no change in
    /// memory usage or tasks, none running or blocked; see `idle.rs`) has only those figures
    /// and its network counters read; the rest, which cannot have changed, are reported as
    /// last read, and read again at least this often. Zero reads every file of
    /// every container on every sweep.
    pub idle_interval: Duration,
    /// Keep the files read on every sweep open and read them with `pread` (no path lookup,
    /// open or close: about half the CPU per container). Each held file keeps a page of
    /// kernel memory (charged to this process's memory cgroup): some 60 KiB per container.
    /// Off by default. Held descriptors stay within `RLIMIT_NOFILE` less a reserve.
    pub hold_files: bool,
    /// The most descriptors this collector holds open across sweeps (cgroup directories,
    /// held files, process handles); beyond it files are opened by path, which costs about
    /// twice the CPU. `None` shares the process's default budget
    /// ([`FdBudget::process_default`](crate::descriptors::FdBudget::process_default): the soft
    /// `RLIMIT_NOFILE` less an eighth) with every other collector that has none of its own.
    /// Another way to share one: [`Collector::with_budget`](crate::Collector::with_budget).
    pub descriptor_budget: Option<usize>,
    /// Read per-CPU usage (v1 `cpuacct.usage_percpu`), one more file per container. Off by
    /// default, as the kubelet runs cAdvisor: such series grow with cores times containers.
    pub per_cpu: bool,
    /// Use inotify to notice new and removed cgroups between rescans.
    pub watch: bool,
    /// At most this many inotify watches (one per cgroup directory per hierarchy).
    pub watch_limit: usize,
    /// Read each container's interface counters from its network namespace. On by default.
    pub network: bool,
    /// Interfaces left out of the network figures, by name prefix. The default is cAdvisor's
    /// list: a namespace's loopback and host-side bridge and veth ends, which would add eight
    /// series per container and say nothing about its traffic.
    pub network_ignore: Vec<String>,
    /// Read task counts by state and their 10 s averages (`container_tasks_state`, load). On by
    /// default.
    pub load: bool,
    /// Read each container's processes, the descriptors and sockets they hold, and its
    /// open-files limit (cAdvisor's process group). A walk of the descriptors costs a system
    /// call each, so full reads take it at most every `process_interval` (an idle container's
    /// are carried over like its other figures); the machine's own cgroup is left out.
    pub processes: bool,
    /// How often full reads take the processes and their descriptors. 10 s by default.
    pub process_interval: Duration,
    /// Count the TCP and UDP sockets of each container's network namespace by state (cAdvisor's
    /// tcp and udp groups): four tables read by full reads on the process interval. Off by
    /// default, as in cAdvisor: each table read walks the kernel's whole socket hash table,
    /// every namespace's (about 0.7 ms a table with 262,144 buckets).
    pub socket_states: bool,
    /// At most this many `/proc/<tid>/stat` reads per sweep for load (procfs fallback only).
    pub load_task_budget: usize,
    /// Writable-layer usage of containers and the machine's filesystems.
    pub fs: crate::fs::FsConfig,
    /// What runs in containers and whom it talks to: findings and the processes started.
    pub security: SecurityConfig,
}

/// The security signals (`security/`): each container's new processes judged against
/// `rules` and `policy`, its long-lived sockets against the pool ports and its own
/// listening ports, and its peers against those of its learning window. Needs `processes` (they ride on its walk of `cgroup.procs` and the
/// descriptors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Turn the security signals on (they also need `Config::processes`). On by default.
    pub enabled: bool,
    /// Follow every exec as it happens through the kernel's process events, where this
    /// process may subscribe (root or CAP_NET_ADMIN, the host's network and PID
    /// namespaces); elsewhere new processes are found by the walks on the process
    /// interval, which miss those shorter than it.
    pub exec_events: bool,
    /// At most this many execs a second looked at per container; beyond, they are counted
    /// as started only.
    pub exec_rate: u32,
    /// The miner names, command-line patterns, pool ports and shells looked for.
    pub rules: Rules,
    /// The programs and listening ports expected per image.
    pub policy: ProcessPolicy,
    /// Listening ports a container opens within this long of first being seen are its own;
    /// one opened later is a `new_listener` finding. The first look at a container's sockets
    /// always is its own.
    pub listener_learning: Duration,
    /// Peers (address, port and direction of each connection) a container meets within this
    /// long of first being seen are its own; one met later is a `new_peer` finding and
    /// counts in `container_network_new_peers_total`.
    pub peer_learning: Duration,
    /// The cluster's address ranges (pods, services, nodes): a peer there that is no
    /// container on this node is `cluster`, elsewhere `external`.
    pub cluster_cidrs: Vec<ipnet::IpNet>,
    /// At most this many finding events per container per sweep; all are counted.
    pub events_per_sweep: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            enabled: true,
            exec_events: true,
            exec_rate: 50,
            rules: Rules::default(),
            policy: ProcessPolicy::default(),
            listener_learning: Duration::from_secs(120),
            peer_learning: Duration::from_secs(600),
            cluster_cidrs: Vec::new(),
            events_per_sweep: 16,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            roots: Roots::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            runtime_only: false,
            containerd_namespaces: vec!["k8s.io".into(), "moby".into(), "default".into()],
            rescan_interval: Duration::from_secs(30),
            watched_rescan_interval: Duration::from_secs(300),
            spec_interval: Duration::from_secs(30),
            watched_spec_interval: Duration::from_secs(300),
            idle_interval: Duration::from_secs(60),
            per_cpu: false,
            hold_files: false,
            descriptor_budget: None,
            watch: true,
            watch_limit: 65_536,
            network: true,
            network_ignore: ["lo", "veth", "docker", "nerdctl"]
                .map(String::from)
                .to_vec(),
            load: true,
            processes: true,
            process_interval: Duration::from_secs(10),
            socket_states: false,
            load_task_budget: 20_000,
            fs: crate::fs::FsConfig::default(),
            security: SecurityConfig::default(),
        }
    }
}
