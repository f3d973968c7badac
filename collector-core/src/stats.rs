//! The figures read for one container. Every field is `Option` where the file that feeds it
//! may be absent (older kernel, controller not enabled, v1 vs v2), so a missing file is never
//! reported as zero.

use serde::{Deserialize, Serialize};

/// Everything read for one container in one sweep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// CPU time and CFS throttling (`cpu.stat`, `cpuacct.*`).
    pub cpu: CpuStats,
    /// Memory usage and its breakdown (`memory.*`).
    pub memory: MemoryStats,
    /// Block IO per device; empty when the blkio/io controller is not there.
    pub blkio: Vec<DeviceIo>,
    /// Task count and limit (`pids.current`, `pids.max`).
    pub pids: PidsStats,
    /// Its processes and what they hold open (cAdvisor's process group).
    #[serde(default)]
    pub processes: ProcessStats,
    /// Its network namespace's TCP and UDP sockets by state.
    #[serde(default)]
    pub sockets: SocketStats,
    /// What the security signals saw in it since the collector started following it.
    #[serde(default)]
    pub security: SecurityStats,
    /// Whom it talks to: the far ends of its own TCP connections (security signals).
    #[serde(default)]
    pub peers: PeerStats,
    /// Stall figures from the `*.pressure` files (v2 and hybrid hosts).
    pub pressure: PressureStats,
    /// Interface counters of its network namespace (`/proc/<pid>/net/dev`).
    pub network: NetworkStats,
    /// Task counts by state and their 10 s averages; `None` when load reading is off or the
    /// tasks could not be counted (procfs budget spent).
    pub load: Option<LoadStats>,
    /// Its limits and shares (cAdvisor's `container_spec_*`).
    pub spec: Spec,
    /// The writable layer (overlay `upperdir`), measured in the background; absent until a
    /// first walk has finished, and for cgroups that are not overlay-rooted containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
}

/// CPU time, all in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time (v1 `cpuacct.usage`, v2 `usage_usec`).
    pub usage_ns: Option<u64>,
    /// User time. From v2 `user_usec` (also the unified twin in hybrid mode, which is exact),
    /// else v1 `cpuacct.stat` ticks converted with USER_HZ.
    pub user_ns: Option<u64>,
    /// System time. From v2 `system_usec`, else v1 `cpuacct.stat` ticks converted with USER_HZ.
    pub system_ns: Option<u64>,
    /// Per-CPU usage (v1 `cpuacct.usage_percpu`); empty on v2, which has no such file.
    pub per_cpu_ns: Vec<u64>,
    /// CFS enforcement periods elapsed (`cpu.stat` `nr_periods`).
    pub nr_periods: Option<u64>,
    /// Periods in which the cgroup was throttled (`cpu.stat` `nr_throttled`).
    pub nr_throttled: Option<u64>,
    /// Time spent throttled (v1 `cpu.stat` `throttled_time`, v2 `throttled_usec`).
    pub throttled_ns: Option<u64>,
}

/// Memory figures in bytes. v1 reads the `total_*` (hierarchical) keys of `memory.stat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// v1 `memory.usage_in_bytes`, v2 `memory.current`.
    pub usage_bytes: Option<u64>,
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak`.
    pub max_usage_bytes: Option<u64>,
    /// Usage minus inactive file pages, floored at 0 (as cAdvisor computes it).
    pub working_set_bytes: Option<u64>,
    /// v1 `total_rss`, v2 `anon`.
    pub rss_bytes: Option<u64>,
    /// v1 `total_cache`, v2 `file`.
    pub cache_bytes: Option<u64>,
    /// v1 `total_mapped_file`, v2 `file_mapped`.
    pub mapped_file_bytes: Option<u64>,
    /// Shared memory and tmpfs pages (`memory.stat` v1 `total_shmem`, v2 `shmem`).
    pub shmem_bytes: Option<u64>,
    /// File pages waiting to be written back (v1 `total_dirty`, v2 `file_dirty`).
    pub dirty_bytes: Option<u64>,
    /// File pages being written back (v1 `total_writeback`, v2 `file_writeback`).
    pub writeback_bytes: Option<u64>,
    /// Anonymous pages on the active LRU list (`memory.stat` `[total_]active_anon`).
    pub active_anon_bytes: Option<u64>,
    /// Anonymous pages on the inactive LRU list (`memory.stat` `[total_]inactive_anon`).
    pub inactive_anon_bytes: Option<u64>,
    /// File pages on the active LRU list (`memory.stat` `[total_]active_file`).
    pub active_file_bytes: Option<u64>,
    /// File pages on the inactive LRU list (`memory.stat` `[total_]inactive_file`); subtracted
    /// from usage for the working set.
    pub inactive_file_bytes: Option<u64>,
    /// Pages that cannot be reclaimed, e.g. mlocked (`memory.stat` `[total_]unevictable`).
    pub unevictable_bytes: Option<u64>,
    /// Kernel memory (v2 `kernel`, v1 `memory.kmem.usage_in_bytes`).
    pub kernel_bytes: Option<u64>,
    /// Swap in use: v1 `memory.stat` `total_swap`, v2 `memory.swap.current`.
    pub swap_bytes: Option<u64>,
    /// Page faults, a count (`memory.stat` `[total_]pgfault`; `container_memory_failures`).
    pub pgfault: Option<u64>,
    /// Major page faults, a count (`memory.stat` `[total_]pgmajfault`).
    pub pgmajfault: Option<u64>,
    /// v1 `memory.failcnt` (times the limit was hit).
    pub failcnt: Option<u64>,
    /// v2 `memory.events` and v1 `oom_control`'s `oom_kill`.
    pub events: MemoryEvents,
}

/// v2 `memory.events`; on v1 only `oom_kill` (from `memory.oom_control`) is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEvents {
    /// Times usage went under `memory.low` protection and was reclaimed anyway (v2 only).
    pub low: Option<u64>,
    /// Times usage went over `memory.high` and was throttled (v2 only).
    pub high: Option<u64>,
    /// Times usage hit `memory.max` (v2 only).
    pub max: Option<u64>,
    /// Times the OOM killer was invoked for the cgroup (v2 only).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer (v2 `oom_kill`, v1 `memory.oom_control`; feeds
    /// `container_oom_events_total`).
    pub oom_kill: Option<u64>,
}

/// Block IO on one device (v1 blkio throttle files, v2 `io.stat`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIo {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Kernel name of the device (`sda`, `vda`, `nullb0`) when it could be resolved.
    pub device: Option<String>,
    /// Bytes read (v1 `io_service_bytes_recursive` `Read`, v2 `rbytes`).
    pub read_bytes: u64,
    /// Bytes written (v1 `io_service_bytes_recursive` `Write`, v2 `wbytes`).
    pub write_bytes: u64,
    /// Read operations (v1 `io_serviced_recursive` `Read`, v2 `rios`).
    pub reads: u64,
    /// Write operations (v1 `io_serviced_recursive` `Write`, v2 `wios`).
    pub writes: u64,
    /// Bytes discarded (v1 `Discard`, v2 `dbytes`); `None` where the kernel does not report it.
    pub discard_bytes: Option<u64>,
    /// Discard operations (v1 `Discard`, v2 `dios`); `None` where the kernel does not report it.
    pub discards: Option<u64>,
}

/// Tasks (threads) of the cgroup and their limit, from the pids controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Tasks now (`pids.current`; cAdvisor's `container_threads`).
    pub current: Option<u64>,
    /// `None` when unlimited (`max`).
    pub limit: Option<u64>,
}

/// A container's processes and the descriptors they hold, read by full reads on the process
/// interval (`Config::process_interval`): a walk of every process's descriptors costs a
/// system call per descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Processes in the cgroup itself (`cgroup.procs`; threads are `pids.current`).
    pub count: Option<u64>,
    /// Descriptors open in them (`/proc/<pid>/fd`).
    pub fds: Option<u64>,
    /// Those of them that are sockets.
    pub sockets: Option<u64>,
    /// The soft open-files limit of its first process (`/proc/<pid>/limits`), as cAdvisor's
    /// `container_ulimits_soft{ulimit="max_open_files"}` takes the container's root process;
    /// `None` when unlimited.
    pub max_open_files: Option<u64>,
}

/// Counters of the security signals (`Config::security`), kept from the first sweep that
/// followed the container; `None` when the signals are off and for the machine's own cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityStats {
    /// Programs started in it: each exec the kernel's process events reported, plus each
    /// process found new in `cgroup.procs` that no event announced (those started before
    /// the collector, or all of them where the events are not available).
    pub processes_started: Option<u64>,
    /// Findings so far by kind (`container_security_findings_total`).
    pub findings: Option<FindingCounts>,
}

/// Findings by kind (`container_security_findings_total{kind}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingCounts {
    /// Processes named like a miner, or with a mining pool in their command line.
    pub miner_process: u64,
    /// TCP connections out to a port mining pools commonly use.
    pub miner_port_connection: u64,
    /// Shells whose stdin and stdout are an outgoing TCP connection.
    pub reverse_shell: u64,
    /// Programs run from the writable layer rather than the image.
    pub exec_from_writable_layer: u64,
    /// Programs run with no file behind them (memfd, or deleted since started).
    pub fileless_exec: u64,
    /// Listening sockets not seen in earlier sweeps.
    pub new_listener: u64,
    /// Processes outside the container's expected set (policy).
    pub unexpected_process: u64,
    /// Peers first met after the container's learning window.
    #[serde(default)]
    pub new_peer: u64,
    /// Connections to a peer its image's `allowed_peers` does not allow (policy).
    #[serde(default)]
    pub unauthorized_connection: u64,
}

/// The far ends of the container's own TCP connections (`ESTABLISHED`, `SYN_SENT`), read
/// with its descriptors on the process interval while the security signals are on; `None`
/// until a first read, when the signals are off and for the machine's own cgroup.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Distinct peers now (`container_network_peers{direction,scope}`).
    pub current: Option<PeerCounts>,
    /// Peers first seen after its learning window, by scope
    /// (`container_network_new_peers_total{scope}`).
    pub new_total: Option<ScopeCounts>,
    /// The peers themselves, for the JSON API: addresses are never labels, and no sink
    /// writes them.
    #[serde(skip)]
    pub list: Vec<Peer>,
}

/// Distinct peers by direction and scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounts {
    /// Peers that connected to its listening ports.
    pub inbound: ScopeCounts,
    /// Peers it connected to.
    pub outbound: ScopeCounts,
}

/// A count per peer scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeCounts {
    /// Peers that are containers on this node.
    pub container: u64,
    /// Peers in the configured cluster ranges.
    pub cluster: u64,
    /// Peers anywhere else.
    pub external: u64,
}

/// Which way a connection was opened: to one of its listening ports, or by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The peer connected to one of the container's listening ports.
    Inbound,
    /// The container opened the connection.
    Outbound,
}

/// Where a peer is: a container on this node, an address in the configured cluster ranges,
/// or elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A container on this node.
    Container,
    /// An address in the configured cluster ranges.
    Cluster,
    /// Anywhere else.
    External,
}

/// One peer of a container: the far end's address, the port the connection serves (the
/// remote one going out, its own listening one coming in), and, for a container on this
/// node, which one.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Which side opened the connection.
    pub direction: Direction,
    /// Where the peer is.
    pub scope: Scope,
    /// The far end's IP address.
    pub addr: std::net::IpAddr,
    /// The remote port going out, the container's own listening port coming in.
    pub port: u16,
    /// The cgroup id of the container at that address, when on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The runtime's name for that container, when on this node and known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

impl Direction {
    /// Both directions, in label order.
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// The `direction` label value.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl Scope {
    /// All scopes, in label order.
    pub const ALL: [Scope; 3] = [Scope::Container, Scope::Cluster, Scope::External];

    /// The `scope` label value.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Container => "container",
            Scope::Cluster => "cluster",
            Scope::External => "external",
        }
    }
}

impl ScopeCounts {
    /// The count for `scope`.
    pub fn get(&self, scope: Scope) -> u64 {
        match scope {
            Scope::Container => self.container,
            Scope::Cluster => self.cluster,
            Scope::External => self.external,
        }
    }

    /// Counts one more peer in `scope`.
    pub fn add(&mut self, scope: Scope) {
        let slot = match scope {
            Scope::Container => &mut self.container,
            Scope::Cluster => &mut self.cluster,
            Scope::External => &mut self.external,
        };
        *slot += 1;
    }

    /// `(scope label, count)` in [`Scope::ALL`]'s order.
    pub fn labeled(&self) -> [(&'static str, u64); 3] {
        Scope::ALL.map(|s| (s.name(), self.get(s)))
    }
}

impl PeerCounts {
    /// The counts for `direction`.
    pub fn of(&self, direction: Direction) -> &ScopeCounts {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// Counts one more peer in `direction` and `scope`.
    pub fn add(&mut self, direction: Direction, scope: Scope) {
        match direction {
            Direction::Inbound => self.inbound.add(scope),
            Direction::Outbound => self.outbound.add(scope),
        }
    }
}

/// The TCP and UDP sockets of the container's network namespace by state: cAdvisor's tcp and
/// udp groups (`container_network_tcp_usage_total{tcp_state}` and the like). Read by full
/// reads, once per namespace per sweep; `None` where the table could not be read, and all
/// `None` for a container in the host's namespace (whose sockets are the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStats {
    /// IPv4 TCP sockets (`net/tcp`).
    pub tcp: Option<TcpCounts>,
    /// IPv6 TCP sockets (`net/tcp6`).
    pub tcp6: Option<TcpCounts>,
    /// IPv4 UDP sockets (`net/udp`).
    pub udp: Option<UdpCounts>,
    /// IPv6 UDP sockets (`net/udp6`).
    pub udp6: Option<UdpCounts>,
}

/// Counts of a `tcp` or `tcp6` table, by state, as cAdvisor's `TcpStat`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounts {
    /// Sockets in `ESTABLISHED`.
    pub established: u64,
    /// Sockets in `SYN_SENT`.
    pub syn_sent: u64,
    /// Sockets in `SYN_RECV`.
    pub syn_recv: u64,
    /// Sockets in `FIN_WAIT1`.
    pub fin_wait1: u64,
    /// Sockets in `FIN_WAIT2`.
    pub fin_wait2: u64,
    /// Sockets in `TIME_WAIT`.
    pub time_wait: u64,
    /// Sockets in `CLOSE`.
    pub close: u64,
    /// Sockets in `CLOSE_WAIT`.
    pub close_wait: u64,
    /// Sockets in `LAST_ACK`.
    pub last_ack: u64,
    /// Sockets in `LISTEN`.
    pub listen: u64,
    /// Sockets in `CLOSING`.
    pub closing: u64,
}

/// Counts of a `udp` or `udp6` table, as cAdvisor's `UdpStat`.
///
/// `listen` counts every UDP socket (UDP has no listening state; cAdvisor counts all rows).
/// The queues are bytes, summed over the sockets. cAdvisor reads the `tx_queue:rx_queue`
/// column as `rx:tx`; these are the kernel's columns, so `rx_queued` here is cAdvisor's
/// `txqueued` and the other way round.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpCounts {
    /// Every UDP socket in the table (its row count).
    pub listen: u64,
    /// Datagrams dropped, summed over the sockets (the `drops` column).
    pub dropped: u64,
    /// Bytes in receive queues (the kernel's `rx_queue` column).
    pub rx_queued: u64,
    /// Bytes in transmit queues (the kernel's `tx_queue` column).
    pub tx_queued: u64,
}

/// Pressure stall information for the three resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureStats {
    /// `cpu.pressure`; `None` where the file is absent (v1 only, or PSI off).
    pub cpu: Option<Psi>,
    /// `memory.pressure`; `None` where the file is absent.
    pub memory: Option<Psi>,
    /// `io.pressure`; `None` where the file is absent.
    pub io: Option<Psi>,
}

/// One `*.pressure` file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    /// The `some` line: time at least one task was stalled.
    pub some: PsiLine,
    /// Absent from `cpu.pressure` on older kernels.
    pub full: Option<PsiLine>,
}

/// One line of a `*.pressure` file: stall averages in percent and the total stall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiLine {
    /// Percent of the last 10 s stalled.
    pub avg10: f64,
    /// Percent of the last 60 s stalled.
    pub avg60: f64,
    /// Percent of the last 300 s stalled.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// Network figures of the container's network namespace.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Why there are no interfaces, when there are none.
    pub status: NetworkStatus,
    /// Counters per interface, less the ignored name prefixes; empty unless `status` is `Own`.
    pub interfaces: Vec<InterfaceStats>,
}

/// Whose network figures a container got, or why it got none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkStatus {
    /// Read from a process of the container in its own network namespace.
    Own,
    /// The container's processes share the host's network namespace: its traffic cannot be
    /// told apart from the host's, so nothing is reported (cAdvisor's rule too).
    HostNamespace,
    /// No process in the cgroup to read from.
    #[default]
    NoProcess,
    /// An application container of a Kubernetes pod: it shares the pod's network namespace,
    /// whose traffic is reported once, on the pod's sandbox (cAdvisor's rule) or, where the
    /// pod has no sandbox cgroup (CRI-O's default), on the pod's own cgroup, so that a sum over
    /// a pod's containers does not count it once per container.
    PodSandbox,
}

/// Counters of one interface, from a row of `/proc/<pid>/net/dev`.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Interface name (`eth0`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
}

/// Task counts by state and their decaying 10 s averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Runnable tasks (procfs state `R`).
    pub running: u64,
    /// Sleeping tasks (procfs `S` or `I`; netlink misses futex and `nanosleep` waits).
    pub sleeping: u64,
    /// Stopped or traced tasks (procfs `T`, `t`).
    pub stopped: u64,
    /// Tasks in uninterruptible sleep (procfs `D`).
    pub uninterruptible: u64,
    /// Tasks waiting on IO that matched no other state (netlink only; 0 from procfs).
    pub io_wait: u64,
    /// Runnable tasks averaged over 10 s (cAdvisor's `container_cpu_load_average_10s`).
    pub load_average_10s: f64,
    /// Uninterruptible tasks averaged over 10 s (cAdvisor's `container_cpu_load_d_average_10s`).
    pub load_d_average_10s: f64,
    /// Where the counts came from.
    pub source: LoadSource,
}

/// Where task counts came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// The kernel's netlink cgroupstats (v1 hierarchies only).
    #[default]
    Netlink,
    /// Each task's state from `/proc/<pid>/task/<tid>/stat`.
    Procfs,
    /// The per-sweep task budget ran out: counts cover only part of the tasks.
    Truncated,
}

// Written out so that `clone_from` reuses the interface list and name buffers (the derived one
// allocates anew): the network figures are copied once per container per sweep.
impl Clone for NetworkStats {
    fn clone(&self) -> Self {
        NetworkStats {
            status: self.status,
            interfaces: self.interfaces.clone(),
        }
    }

    fn clone_from(&mut self, o: &Self) {
        self.status = o.status;
        self.interfaces.clone_from(&o.interfaces);
    }
}

impl Clone for InterfaceStats {
    fn clone(&self) -> Self {
        let mut c = InterfaceStats {
            name: String::new(),
            ..*self
        };
        c.name.clone_from(&self.name);
        c
    }

    fn clone_from(&mut self, o: &Self) {
        self.name.clone_from(&o.name);
        self.rx_bytes = o.rx_bytes;
        self.rx_packets = o.rx_packets;
        self.rx_errors = o.rx_errors;
        self.rx_dropped = o.rx_dropped;
        self.tx_bytes = o.tx_bytes;
        self.tx_packets = o.tx_packets;
        self.tx_errors = o.tx_errors;
        self.tx_dropped = o.tx_dropped;
    }
}

// Written out so that `clone_from` reuses the list and its strings: a container's peers are
// copied into its figures every sweep.
impl Clone for PeerStats {
    fn clone(&self) -> Self {
        PeerStats {
            current: self.current.clone(),
            new_total: self.new_total.clone(),
            list: self.list.clone(),
        }
    }

    fn clone_from(&mut self, o: &Self) {
        self.current.clone_from(&o.current);
        self.new_total.clone_from(&o.new_total);
        self.list.clone_from(&o.list);
    }
}

impl Clone for Peer {
    fn clone(&self) -> Self {
        Peer {
            container_id: self.container_id.clone(),
            container_name: self.container_name.clone(),
            ..*self
        }
    }

    fn clone_from(&mut self, o: &Self) {
        self.direction = o.direction;
        self.scope = o.scope;
        self.addr = o.addr;
        self.port = o.port;
        self.container_id.clone_from(&o.container_id);
        self.container_name.clone_from(&o.container_name);
    }
}

impl Clone for DeviceIo {
    fn clone(&self) -> Self {
        let mut c = DeviceIo {
            device: None,
            ..*self
        };
        c.device.clone_from(&self.device);
        c
    }

    // Reuses the name's buffer: an idle container's figures are copied every sweep.
    fn clone_from(&mut self, o: &Self) {
        self.device.clone_from(&o.device);
        self.major = o.major;
        self.minor = o.minor;
        self.read_bytes = o.read_bytes;
        self.write_bytes = o.write_bytes;
        self.reads = o.reads;
        self.writes = o.writes;
        self.discard_bytes = o.discard_bytes;
        self.discards = o.discards;
    }
}

/// Limits and requests set on the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// v1 `cpu.shares`; on v2 derived from `cpu.weight` as cAdvisor and runc convert it.
    pub cpu_shares: Option<u64>,
    /// v2 `cpu.weight`.
    pub cpu_weight: Option<u64>,
    /// CFS quota in microseconds; `None` when unlimited.
    pub cpu_quota_us: Option<u64>,
    /// CFS period in microseconds (v1 `cpu.cfs_period_us`, v2 `cpu.max`).
    pub cpu_period_us: Option<u64>,
    /// CPUs it may run on, as a list (`0-3,6`) (v1 `cpuset.cpus`, v2 `cpuset.cpus.effective`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes it may use (v1 `cpuset.mems`, v2 `cpuset.mems.effective`).
    pub cpuset_mems: Option<String>,
    /// `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// v1 `memory.soft_limit_in_bytes`, v2 `memory.low`; `None` when unset.
    pub memory_reservation_bytes: Option<u64>,
    /// v2 `memory.high`; `None` when unlimited.
    pub memory_high_bytes: Option<u64>,
    /// v1 `memsw.limit` (memory plus swap), v2 `memory.swap.max` (swap alone); `None` when unlimited.
    pub memory_swap_limit_bytes: Option<u64>,
    /// Task limit (`pids.max`); `None` when unlimited.
    pub pids_limit: Option<u64>,
}

impl Spec {
    /// Copies `o` in, reusing this one's string buffers (derived `clone_from` would not).
    pub fn assign(&mut self, o: &Spec) {
        self.cpu_shares = o.cpu_shares;
        self.cpu_weight = o.cpu_weight;
        self.cpu_quota_us = o.cpu_quota_us;
        self.cpu_period_us = o.cpu_period_us;
        self.cpuset_cpus.clone_from(&o.cpuset_cpus);
        self.cpuset_mems.clone_from(&o.cpuset_mems);
        self.memory_limit_bytes = o.memory_limit_bytes;
        self.memory_reservation_bytes = o.memory_reservation_bytes;
        self.memory_high_bytes = o.memory_high_bytes;
        self.memory_swap_limit_bytes = o.memory_swap_limit_bytes;
        self.pids_limit = o.pids_limit;
    }
}

/// A container's writable layer: what a background walk of its overlay `upperdir` found, and
/// the filesystem that holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsStats {
    /// Major number of the backing filesystem's device (`st_dev` of the upper directory).
    pub major: u32,
    /// Minor number of that device.
    pub minor: u32,
    /// Kernel name of that device (`vda`, `dm-0`) when it resolves; else the mount's source.
    pub device: Option<String>,
    /// The upper directory, as a host path.
    pub upperdir: String,
    /// Bytes allocated to the layer's files (`st_blocks` * 512, hard links once), like `du -s`.
    pub usage_bytes: u64,
    /// Inodes in the layer, its top directory included (hard links once).
    pub inodes_used: u64,
    /// The backing filesystem's size in bytes (`statvfs`); `None` until `statvfs` on it has
    /// answered.
    pub limit_bytes: Option<u64>,
    /// Bytes free for unprivileged users (`statvfs` `f_bavail`); `None` until `statvfs` on it
    /// has answered.
    pub available_bytes: Option<u64>,
    /// Inodes in total (`statvfs`); `None` where the filesystem has no fixed count (btrfs).
    pub inodes_total: Option<u64>,
    /// Inodes free (`statvfs`); `None` where the filesystem has no fixed count.
    pub inodes_free: Option<u64>,
    /// When the walk that gave `usage_bytes` finished (Unix milliseconds): the figure is the
    /// last good one, not a fresh reading.
    pub measured_ms: u64,
    /// Milliseconds since `measured_ms` at this sweep (`container_fs_usage_age_seconds`).
    pub age_ms: u64,
    /// Wall time the walk took, over all its slices.
    pub walk_duration_ms: u64,
    /// How many times the regular interval this layer is now walked at (1 unless walks of it
    /// ran over their time budget).
    pub backoff: u32,
}

/// Usage minus inactive file pages, floored at 0: the figure the OOM killer's view is closest to.
pub fn working_set(usage: Option<u64>, inactive_file: Option<u64>) -> Option<u64> {
    let usage = usage?;
    Some(usage.saturating_sub(inactive_file.unwrap_or(0)))
}

impl ContainerStats {
    /// Clears the figures but keeps the buffers (the spec is overwritten whole by a read of
    /// it, or from the last one; the interfaces in place by the network read).
    pub fn reset(&mut self) {
        let spec = std::mem::take(&mut self.spec);
        let mut per_cpu = std::mem::take(&mut self.cpu.per_cpu_ns);
        per_cpu.clear();
        let mut blkio = std::mem::take(&mut self.blkio);
        blkio.clear();
        let ifaces = std::mem::take(&mut self.network.interfaces);
        let mut peers = std::mem::take(&mut self.peers.list);
        peers.clear();
        *self = ContainerStats::default();
        self.peers.list = peers;
        self.cpu.per_cpu_ns = per_cpu;
        self.blkio = blkio;
        self.network.interfaces = ifaces;
        self.spec = spec;
    }

    /// Copies in `from`'s figures that a full read takes and the probe does not ("the rest"),
    /// reusing buffers, and leaves the others: the probe's (CPU time, memory usage, tasks),
    /// and what every sweep reads or sets on its own (load, network, spec, writable layer).
    /// An idle sweep reports a full read's rest this way (`idle.rs`), and a full read is kept
    /// the same way.
    ///
    /// The groups read only by full reads (memory but its usage, block IO, processes, socket
    /// states, pressure) are
    /// copied whole, so a figure added to them is carried with no change here. The groups
    /// that mix the two are taken apart without `..`: a field added to `ContainerStats` or
    /// `CpuStats` does not compile until it is placed.
    ///
    /// `throttling_in_probe`: CFS throttling came with the probe's `cpu.stat` (cgroup v2),
    /// rather than from v1's `cpu.stat`, which only full reads take.
    pub fn carry_rest(&mut self, from: &ContainerStats, throttling_in_probe: bool) {
        let ContainerStats {
            cpu,
            memory,
            blkio,
            pids: _,
            processes,
            sockets,
            security: _,
            // Set after every read, idle or not, from what the collector keeps.
            peers: _,
            pressure,
            network: _,
            load: _,
            spec: _,
            fs: _,
        } = self;
        let CpuStats {
            usage_ns: _,
            user_ns: _,
            system_ns: _,
            per_cpu_ns,
            nr_periods,
            nr_throttled,
            throttled_ns,
        } = cpu;
        per_cpu_ns.clone_from(&from.cpu.per_cpu_ns);
        if !throttling_in_probe {
            *nr_periods = from.cpu.nr_periods;
            *nr_throttled = from.cpu.nr_throttled;
            *throttled_ns = from.cpu.throttled_ns;
        }
        let usage = memory.usage_bytes;
        memory.clone_from(&from.memory);
        memory.usage_bytes = usage;
        memory.working_set_bytes = working_set(usage, memory.inactive_file_bytes);
        blkio.clone_from(&from.blkio);
        processes.clone_from(&from.processes);
        sockets.clone_from(&from.sockets);
        pressure.clone_from(&from.pressure);
    }
}
