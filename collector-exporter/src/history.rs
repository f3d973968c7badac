//! The web page's recent history: for each container, a ring of the few figures its charts
//! draw (rates from consecutive sweeps, and gauges), one point per recorded sweep, the
//! timestamps shared by all containers. Bounded twice: a window (`--web.ui-history`) and at
//! most [`MAX_POINTS`] points per container, finer sweeps being thinned to fit.
//!
//! A point is 18 bytes: figures as bfloat16 (f32's range, about 3 significant digits,
//! which is below a pixel on a chart) and percentages as one byte. A container's history
//! goes with it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use collector_core::machine::CpuTime;
use collector_core::{Container, Snapshot};
use serde::Serialize;

/// Points kept per container at most: 1,000 containers at the cap cost 9.2 MB.
pub const MAX_POINTS: usize = 512;

/// An f32 in 16 bits (its top half, rounded to nearest even). NaN stands for "unknown".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bf16(u16);

impl Bf16 {
    pub const UNKNOWN: Bf16 = Bf16(0x7fc0);

    pub fn new(v: f32) -> Bf16 {
        if v.is_nan() {
            return Bf16::UNKNOWN;
        }
        let bits = v.to_bits();
        let round = 0x7fff + ((bits >> 16) & 1);
        Bf16((bits.saturating_add(round) >> 16) as u16)
    }

    pub fn of(v: Option<f64>) -> Bf16 {
        v.map_or(Bf16::UNKNOWN, |v| Bf16::new(v as f32))
    }

    pub fn get(self) -> Option<f32> {
        let v = f32::from_bits(u32::from(self.0) << 16);
        (!v.is_nan()).then_some(v)
    }
}

/// A percentage 0..=100 in one byte; 255 is "unknown".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pct(u8);

impl Pct {
    pub const UNKNOWN: Pct = Pct(u8::MAX);

    pub fn of(v: Option<f64>) -> Pct {
        match v {
            Some(v) if v.is_finite() => Pct(v.round().clamp(0.0, 100.0) as u8),
            _ => Pct::UNKNOWN,
        }
    }

    pub fn get(self) -> Option<u8> {
        (self != Pct::UNKNOWN).then_some(self.0)
    }
}

/// One container's figures at one recorded sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// CPU used, in cores (CPU seconds a second).
    pub cpu_cores: Bf16,
    pub working_set_bytes: Bf16,
    pub cache_bytes: Bf16,
    pub rx_bytes_per_s: Bf16,
    pub tx_bytes_per_s: Bf16,
    pub read_bytes_per_s: Bf16,
    pub write_bytes_per_s: Bf16,
    /// Share of the CFS periods in which it was throttled.
    pub throttled_pct: Pct,
    /// `some avg10` of the cpu, memory and io pressure files.
    pub pressure_pct: [Pct; 3],
}

/// The counters rates are taken from, as of the last recorded sweep.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    time_ms: u64,
    cpu_ns: Option<u64>,
    periods: Option<u64>,
    throttled: Option<u64>,
    rx: Option<u64>,
    tx: Option<u64>,
    read: Option<u64>,
    write: Option<u64>,
}

impl Counters {
    fn of(c: &Container, time_ms: u64) -> Counters {
        let s = &c.stats;
        let net = !s.network.interfaces.is_empty();
        let io = !s.blkio.is_empty();
        Counters {
            time_ms,
            cpu_ns: s.cpu.usage_ns,
            periods: s.cpu.nr_periods,
            throttled: s.cpu.nr_throttled,
            rx: net.then(|| s.network.interfaces.iter().map(|i| i.rx_bytes).sum()),
            tx: net.then(|| s.network.interfaces.iter().map(|i| i.tx_bytes).sum()),
            read: io.then(|| s.blkio.iter().map(|d| d.read_bytes).sum()),
            write: io.then(|| s.blkio.iter().map(|d| d.write_bytes).sum()),
        }
    }
}

/// How much `now` grew since `before`; `None` when either is unknown or the counter went
/// back (a container restarted in place starts again from zero).
fn delta(before: Option<u64>, now: Option<u64>) -> Option<u64> {
    now?.checked_sub(before?)
}

/// A point from two consecutive readings (`prev` is `None` for a container's first).
fn point(c: &Container, prev: Option<&Counters>, now: &Counters) -> Point {
    let s = &c.stats;
    let secs = prev
        .map(|p| now.time_ms.saturating_sub(p.time_ms) as f64 / 1000.0)
        .filter(|s| *s > 0.0);
    let rate = |f: fn(&Counters) -> Option<u64>| {
        let (p, secs) = (prev?, secs?);
        delta(f(p), f(now)).map(|d| d as f64 / secs)
    };
    let throttled = prev.and_then(|p| {
        let periods = delta(p.periods, now.periods)?;
        let throttled = delta(p.throttled, now.throttled)?;
        Some(if periods == 0 {
            0.0
        } else {
            throttled as f64 * 100.0 / periods as f64
        })
    });
    let psi = |p: &Option<collector_core::stats::Psi>| Pct::of(p.as_ref().map(|p| p.some.avg10));
    Point {
        cpu_cores: Bf16::of(rate(|c| c.cpu_ns).map(|ns| ns / 1e9)),
        working_set_bytes: Bf16::of(s.memory.working_set_bytes.map(|v| v as f64)),
        cache_bytes: Bf16::of(s.memory.cache_bytes.map(|v| v as f64)),
        rx_bytes_per_s: Bf16::of(rate(|c| c.rx)),
        tx_bytes_per_s: Bf16::of(rate(|c| c.tx)),
        read_bytes_per_s: Bf16::of(rate(|c| c.read)),
        write_bytes_per_s: Bf16::of(rate(|c| c.write)),
        throttled_pct: Pct::of(throttled),
        pressure_pct: [
            psi(&s.pressure.cpu),
            psi(&s.pressure.memory),
            psi(&s.pressure.io),
        ],
    }
}

#[derive(Debug)]
struct Series {
    /// Oldest first; the newest is at the latest recorded sweep.
    points: VecDeque<Point>,
    /// The newest point, also kept when the ring is off (window 0) for the overview's rates.
    latest: Point,
    last: Counters,
    /// The recorded sweep that last saw it: those not seen by the newest go.
    seen: u64,
}

/// The machine's CPU by mode: shares of the time between the last two recorded sweeps.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModeShare {
    pub mode: &'static str,
    /// 0..=1 of all CPUs' time.
    pub share: f32,
}

/// The rings of every container, and the machine's last CPU modes.
#[derive(Debug)]
pub struct History {
    cap: usize,
    /// Every `stride`-th sweep is recorded.
    stride: u64,
    sweeps: u64,
    recorded: u64,
    /// The recorded sweeps' times (Unix ms), as many as the longest ring.
    times: VecDeque<u64>,
    series: HashMap<Box<str>, Series>,
    cpu_time: Option<CpuTime>,
    modes: Vec<ModeShare>,
}

impl History {
    /// A history of `window` at sweeps `interval` apart; a zero window keeps no ring, only
    /// each container's latest rates.
    pub fn new(window: Duration, interval: Duration) -> History {
        let sweeps = if interval.is_zero() {
            0
        } else {
            window.as_millis().div_ceil(interval.as_millis()) as u64
        };
        let stride = sweeps.div_ceil(MAX_POINTS as u64).max(1);
        History {
            cap: sweeps.div_ceil(stride) as usize,
            stride,
            sweeps: 0,
            recorded: 0,
            times: VecDeque::new(),
            series: HashMap::new(),
            cpu_time: None,
            modes: Vec::new(),
        }
    }

    /// Points kept per container.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Sweeps per recorded point.
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// Takes a sweep's figures (every `stride`-th sweep); containers no longer in it lose
    /// their history.
    pub fn record(&mut self, snap: &Snapshot) {
        self.sweeps += 1;
        if (self.sweeps - 1) % self.stride != 0 {
            return;
        }
        self.recorded += 1;
        let now = self.recorded;
        if self.cap > 0 {
            if self.times.len() == self.cap {
                self.times.pop_front();
            }
            self.times.push_back(snap.timestamp_ms);
        }
        for c in &snap.containers {
            let counters = Counters::of(c, snap.timestamp_ms);
            match self.series.get_mut(c.id.as_str()) {
                Some(s) => {
                    let p = point(c, Some(&s.last), &counters);
                    if self.cap > 0 {
                        if s.points.len() == self.cap {
                            s.points.pop_front();
                        }
                        s.points.push_back(p);
                    }
                    s.latest = p;
                    s.last = counters;
                    s.seen = now;
                }
                None => {
                    let p = point(c, None, &counters);
                    let mut points = VecDeque::with_capacity(self.cap);
                    if self.cap > 0 {
                        points.push_back(p);
                    }
                    let s = Series {
                        points,
                        latest: p,
                        last: counters,
                        seen: now,
                    };
                    self.series.insert(c.id.as_str().into(), s);
                }
            }
        }
        self.series.retain(|_, s| s.seen == now);
        self.machine(snap);
    }

    fn machine(&mut self, snap: &Snapshot) {
        let Some(now) = snap.machine.cpu_time else {
            return;
        };
        if let Some(before) = self.cpu_time.replace(now) {
            let d: Vec<(&'static str, u64)> = now
                .modes()
                .zip(before.modes())
                .map(|((mode, n), (_, b))| (mode, n.saturating_sub(b)))
                .collect();
            let total: u64 = d.iter().map(|(_, v)| v).sum();
            if total > 0 {
                self.modes = d
                    .into_iter()
                    .map(|(mode, v)| ModeShare {
                        mode,
                        share: (v as f64 / total as f64) as f32,
                    })
                    .collect();
            }
        }
    }

    /// The machine's CPU by mode over the last recorded interval; empty until two sweeps.
    pub fn cpu_modes(&self) -> &[ModeShare] {
        &self.modes
    }

    /// A container's newest point.
    pub fn latest(&self, id: &str) -> Option<&Point> {
        self.series.get(id).map(|s| &s.latest)
    }

    /// A container's points, oldest first, each with its time.
    pub fn points(&self, id: &str) -> Option<impl Iterator<Item = (u64, &Point)>> {
        let s = self.series.get(id)?;
        let skip = self.times.len().saturating_sub(s.points.len());
        Some(self.times.iter().skip(skip).copied().zip(s.points.iter()))
    }

    /// How many containers have a history.
    pub fn containers(&self) -> usize {
        self.series.len()
    }

    /// The bytes this history holds on the heap (rings and the table), as allocated.
    pub fn heap_bytes(&self) -> usize {
        let per = std::mem::size_of::<(Box<str>, Series)>() + 1;
        self.times.capacity() * 8
            + self.series.capacity() * per
            + self
                .series
                .iter()
                .map(|(k, s)| k.len() + s.points.capacity() * std::mem::size_of::<Point>())
                .sum::<usize>()
            + self.modes.capacity() * std::mem::size_of::<ModeShare>()
    }
}

/// `/api/v1/containers/{id}/history`: the points as columns, `null` where unknown.
#[derive(Debug, Default, Serialize)]
pub struct Columns<'a> {
    pub id: &'a str,
    /// Time between points, and the window kept.
    pub step_ms: u64,
    pub window_ms: u64,
    pub times_ms: Vec<u64>,
    pub cpu_cores: Vec<Option<f32>>,
    pub working_set_bytes: Vec<Option<f32>>,
    pub cache_bytes: Vec<Option<f32>>,
    pub throttled_pct: Vec<Option<u8>>,
    pub rx_bytes_per_s: Vec<Option<f32>>,
    pub tx_bytes_per_s: Vec<Option<f32>>,
    pub read_bytes_per_s: Vec<Option<f32>>,
    pub write_bytes_per_s: Vec<Option<f32>>,
    pub pressure_cpu_pct: Vec<Option<u8>>,
    pub pressure_memory_pct: Vec<Option<u8>>,
    pub pressure_io_pct: Vec<Option<u8>>,
}

impl<'a> Columns<'a> {
    /// The columns of `id`'s history; `None` when it has none.
    pub fn of(h: &History, id: &'a str, interval: Duration) -> Option<Columns<'a>> {
        let step_ms = interval.as_millis() as u64 * h.stride;
        let mut c = Columns {
            id,
            step_ms,
            window_ms: step_ms * h.cap as u64,
            ..Columns::default()
        };
        for (t, p) in h.points(id)? {
            c.times_ms.push(t);
            c.cpu_cores.push(p.cpu_cores.get());
            c.working_set_bytes.push(p.working_set_bytes.get());
            c.cache_bytes.push(p.cache_bytes.get());
            c.throttled_pct.push(p.throttled_pct.get());
            c.rx_bytes_per_s.push(p.rx_bytes_per_s.get());
            c.tx_bytes_per_s.push(p.tx_bytes_per_s.get());
            c.read_bytes_per_s.push(p.read_bytes_per_s.get());
            c.write_bytes_per_s.push(p.write_bytes_per_s.get());
            let [cpu, mem, io] = p.pressure_pct;
            c.pressure_cpu_pct.push(cpu.get());
            c.pressure_memory_pct.push(mem.get());
            c.pressure_io_pct.push(io.get());
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, cpu_ns: u64, rx: u64) -> Container {
        let mut c = Container {
            id: id.into(),
            identity: collector_core::identity::classify(id, &[]),
            first_seen_ms: 0,
            created_ms: None,
            idle: false,
            meta: Default::default(),
            stats: Default::default(),
        };
        c.stats.cpu.usage_ns = Some(cpu_ns);
        c.stats.memory.working_set_bytes = Some(1 << 20);
        c.stats
            .network
            .interfaces
            .push(collector_core::stats::InterfaceStats {
                name: "eth0".into(),
                rx_bytes: rx,
                ..Default::default()
            });
        c
    }

    fn snap(t_ms: u64, cs: Vec<Container>) -> Snapshot {
        Snapshot {
            timestamp_ms: t_ms,
            containers: cs,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_point_is_small() {
        assert_eq!(std::mem::size_of::<Point>(), 18);
    }

    #[test]
    fn bfloat16_keeps_three_digits_and_unknown() {
        for v in [0.0f32, 1.0, 0.123_456, 2.5e9, 123_456_789.0, 1e-6] {
            let got = Bf16::new(v).get().unwrap();
            assert!((got - v).abs() <= v.abs() / 256.0, "{v} -> {got}");
        }
        assert_eq!(Bf16::new(f32::NAN).get(), None);
        assert_eq!(Bf16::of(None).get(), None);
        assert_eq!(Pct::of(Some(150.0)).get(), Some(100));
        assert_eq!(Pct::of(Some(f64::NAN)).get(), None);
    }

    #[test]
    fn rates_from_counters_and_a_counter_reset_is_unknown() {
        let mut h = History::new(Duration::from_secs(60), Duration::from_secs(1));
        h.record(&snap(1_000, vec![container("/a", 0, 0)]));
        assert_eq!(h.latest("/a").unwrap().cpu_cores.get(), None, "no rate yet");
        h.record(&snap(3_000, vec![container("/a", 1_000_000_000, 4096)]));
        let p = *h.latest("/a").unwrap();
        assert_eq!(p.cpu_cores.get(), Some(0.5));
        assert_eq!(p.rx_bytes_per_s.get(), Some(2048.0));
        assert_eq!(p.working_set_bytes.get(), Some((1 << 20) as f32));
        // Restarted in place: the counters start again from zero.
        h.record(&snap(4_000, vec![container("/a", 10, 1)]));
        let p = *h.latest("/a").unwrap();
        assert_eq!((p.cpu_cores.get(), p.rx_bytes_per_s.get()), (None, None));
        h.record(&snap(5_000, vec![container("/a", 2_000_000_010, 1)]));
        assert_eq!(h.latest("/a").unwrap().cpu_cores.get(), Some(2.0));
        assert_eq!(h.latest("/a").unwrap().rx_bytes_per_s.get(), Some(0.0));
    }

    #[test]
    fn bounded_by_the_window_and_dropped_with_the_container() {
        let mut h = History::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!((h.capacity(), h.stride()), (10, 1));
        for i in 0..25u64 {
            let mut cs = vec![container("/a", i * 1_000_000, 0)];
            if i >= 20 {
                cs.push(container("/b", 0, 0));
            }
            h.record(&snap(i * 1000, cs));
        }
        let a: Vec<u64> = h.points("/a").unwrap().map(|(t, _)| t).collect();
        assert_eq!(a, (15..25).map(|i| i * 1000).collect::<Vec<_>>());
        // A newer container's points end at the same, latest, time.
        let b: Vec<u64> = h.points("/b").unwrap().map(|(t, _)| t).collect();
        assert_eq!(b, (20..25).map(|i| i * 1000).collect::<Vec<_>>());
        h.record(&snap(25_000, vec![container("/b", 0, 0)]));
        assert!(h.points("/a").is_none() && h.latest("/a").is_none());
        assert_eq!(h.containers(), 1);
        let cols = Columns::of(&h, "/b", Duration::from_secs(1)).unwrap();
        assert_eq!((cols.step_ms, cols.window_ms), (1000, 10_000));
        assert_eq!(cols.times_ms.len(), 6);
        assert_eq!(cols.cpu_cores[0], None);
        assert_eq!(cols.cpu_cores[1], Some(0.0));
    }

    #[test]
    fn fine_sweeps_are_thinned_to_the_cap_and_zero_keeps_only_the_latest() {
        let h = History::new(Duration::from_secs(900), Duration::from_secs(1));
        assert_eq!((h.capacity(), h.stride()), (450, 2));
        let h = History::new(Duration::from_secs(900), Duration::from_secs(5));
        assert_eq!((h.capacity(), h.stride()), (180, 1));
        let mut h = History::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(h.capacity(), 0);
        h.record(&snap(0, vec![container("/a", 0, 0)]));
        h.record(&snap(1000, vec![container("/a", 500_000_000, 0)]));
        assert_eq!(h.latest("/a").unwrap().cpu_cores.get(), Some(0.5));
        assert_eq!(h.points("/a").unwrap().count(), 0);
        // Every other sweep recorded: rates span the two sweeps.
        let mut h = History::new(
            Duration::from_secs(2 * MAX_POINTS as u64),
            Duration::from_secs(1),
        );
        assert_eq!(h.stride(), 2);
        for i in 0..5u64 {
            h.record(&snap(i * 1000, vec![container("/a", i * 1_000_000_000, 0)]));
        }
        let t: Vec<u64> = h.points("/a").unwrap().map(|(t, _)| t).collect();
        assert_eq!(t, vec![0, 2000, 4000]);
        assert_eq!(h.latest("/a").unwrap().cpu_cores.get(), Some(1.0));
    }

    #[test]
    fn machine_cpu_modes_are_shares_of_the_interval() {
        let mut h = History::new(Duration::from_secs(60), Duration::from_secs(1));
        let mut s = snap(0, vec![]);
        s.machine.cpu_time = Some(CpuTime {
            user_ns: 100,
            idle_ns: 100,
            iowait_ns: Some(0),
            ..Default::default()
        });
        h.record(&s);
        assert!(h.cpu_modes().is_empty());
        s.machine.cpu_time = Some(CpuTime {
            user_ns: 150,
            idle_ns: 125,
            iowait_ns: Some(25),
            ..Default::default()
        });
        h.record(&s);
        let share = |m: &str| h.cpu_modes().iter().find(|s| s.mode == m).unwrap().share;
        assert_eq!(
            (share("user"), share("idle"), share("iowait")),
            (0.5, 0.25, 0.25)
        );
    }
}
