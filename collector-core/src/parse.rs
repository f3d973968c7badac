//! Parsers for the kernel's cgroup and procfs text formats. They take the file's content and
//! never panic on any input; a bad line is reported by its number and the rest is still parsed,
//! so a caller keeps what could be read.

use crate::stats::{InterfaceStats, Psi, PsiLine};

/// Why a file did not parse: the first bad line and what was wrong with it.
pub type Reason = String;

/// A single unsigned integer, as in `memory.current` or `cpuacct.usage`.
pub fn single_u64(content: &str) -> Result<u64, Reason> {
    let t = content.trim();
    t.parse::<u64>()
        .map_err(|_| format!("expected an unsigned integer, found {:?}", truncate(t)))
}

/// A limit: `max` (v2) means unlimited. v1 reports "unlimited" as a huge page-rounded number
/// near `i64::MAX`; that is mapped to `None` too, so one convention serves both.
pub fn limit(content: &str) -> Result<Option<u64>, Reason> {
    let t = content.trim();
    if t == "max" {
        return Ok(None);
    }
    // v1 cpu.cfs_quota_us says -1 for no quota.
    if t == "-1" {
        return Ok(None);
    }
    let v = single_u64(t)?;
    Ok(if v >= V1_UNLIMITED_FLOOR {
        None
    } else {
        Some(v)
    })
}

/// v1 writes PAGE_COUNTER_MAX * page size (0x7FFFFFFFFFFFF000 with 4 KiB pages) for "no limit".
/// Anything this large is no real limit on any machine.
pub const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Flat keyed files (`memory.stat`, `cpu.stat`, `memory.events`, `cpuacct.stat`): one
/// `key value` pair per line. Calls `f` for each good pair and returns the first bad line.
pub fn flat_keyed(content: &str, mut f: impl FnMut(&str, u64)) -> Result<(), Reason> {
    let mut first_err = None;
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_ascii_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            first_err.get_or_insert_with(|| bad_line(n, line, "expected `key value`"));
            continue;
        };
        match v.parse::<u64>() {
            Ok(v) => f(k, v),
            Err(_) => {
                first_err
                    .get_or_insert_with(|| bad_line(n, line, "value is not an unsigned integer"));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Space separated integers on one line (`cpuacct.usage_percpu`). Fills `out` (cleared first).
pub fn u64_list(content: &str, out: &mut Vec<u64>) -> Result<(), Reason> {
    out.clear();
    for w in content.split_ascii_whitespace() {
        match w.parse::<u64>() {
            Ok(v) => out.push(v),
            Err(_) => {
                out.clear();
                return Err(format!("not an unsigned integer: {:?}", truncate(w)));
            }
        }
    }
    Ok(())
}

/// The soft limit on open files in `/proc/<pid>/limits` (`Max open files  1024  4096  files`);
/// `None` when unlimited.
pub fn max_open_files(content: &str) -> Result<Option<u64>, Reason> {
    let row = content
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .ok_or_else(|| "no \"Max open files\" row".to_string())?;
    match row.split_ascii_whitespace().next() {
        Some("unlimited") => Ok(None),
        Some(w) => w
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("not a limit: {:?}", truncate(w))),
        None => Err("an empty \"Max open files\" row".into()),
    }
}

/// v2 `cpu.max`: `$QUOTA $PERIOD`, quota may be `max`. Returns (quota, period).
pub fn cpu_max(content: &str) -> Result<(Option<u64>, u64), Reason> {
    let mut it = content.split_ascii_whitespace();
    let (Some(q), Some(p), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!(
            "expected `QUOTA PERIOD`, found {:?}",
            truncate(content.trim())
        ));
    };
    let quota = if q == "max" {
        None
    } else {
        Some(
            q.parse::<u64>()
                .map_err(|_| format!("bad quota {:?}", truncate(q)))?,
        )
    };
    let period = p
        .parse::<u64>()
        .map_err(|_| format!("bad period {:?}", truncate(p)))?;
    Ok((quota, period))
}

/// A row of v2 `io.stat`: `MAJ:MIN key=value ...`. `f` receives the device and each pair.
/// Rows whose device or any pair does not parse are skipped whole and reported; a row the
/// kernel is still writing is never half-used.
pub fn nested_keyed<'a>(
    content: &'a str,
    mut f: impl FnMut(u32, u32, &mut dyn Iterator<Item = (&'a str, u64)>),
) -> Result<(), Reason> {
    let mut first_err = None;
    for (n, line) in content.lines().enumerate() {
        let mut words = line.split_ascii_whitespace();
        let Some(dev) = words.next() else { continue };
        let Some((major, minor)) = major_minor(dev) else {
            first_err.get_or_insert_with(|| bad_line(n, line, "expected MAJ:MIN first"));
            continue;
        };
        // Validate the whole row before handing any of it out.
        let valid = words.clone().all(|w| {
            w.split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && v.parse::<u64>().is_ok())
        });
        if !valid {
            first_err.get_or_insert_with(|| bad_line(n, line, "expected key=value pairs"));
            continue;
        }
        let mut pairs = words.filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k, v.parse::<u64>().ok()?))
        });
        f(major, minor, &mut pairs);
    }
    first_err.map_or(Ok(()), Err)
}

/// v1 blkio throttle files: `MAJ:MIN Op value` rows and a trailing `Total value`.
/// `f` receives (major, minor, op, value) for each device row.
pub fn blkio_v1(content: &str, mut f: impl FnMut(u32, u32, &str, u64)) -> Result<(), Reason> {
    let mut first_err = None;
    for (n, line) in content.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(first) = it.next() else { continue };
        if first == "Total" {
            continue;
        }
        let (Some((major, minor)), Some(op), Some(v), None) =
            (major_minor(first), it.next(), it.next(), it.next())
        else {
            first_err.get_or_insert_with(|| bad_line(n, line, "expected `MAJ:MIN Op value`"));
            continue;
        };
        match v.parse::<u64>() {
            Ok(v) => f(major, minor, op, v),
            Err(_) => {
                first_err
                    .get_or_insert_with(|| bad_line(n, line, "value is not an unsigned integer"));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// `*.pressure` (PSI): `some avg10=.. avg60=.. avg300=.. total=..` and optionally `full ...`.
pub fn psi(content: &str) -> Result<Psi, Reason> {
    let mut some = None;
    let mut full = None;
    for (n, line) in content.lines().enumerate() {
        let mut it = line.split_ascii_whitespace();
        let Some(kind) = it.next() else { continue };
        let mut l = PsiLine::default();
        let mut seen = 0u8;
        for w in it {
            let Some((k, v)) = w.split_once('=') else {
                return Err(bad_line(n, line, "expected key=value"));
            };
            // Averages are percentages: finite and not negative.
            let pct = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0);
            let ok = match k {
                "avg10" => pct(v).map(|x| l.avg10 = x).is_some(),
                "avg60" => pct(v).map(|x| l.avg60 = x).is_some(),
                "avg300" => pct(v).map(|x| l.avg300 = x).is_some(),
                "total" => v.parse().map(|x| l.total_us = x).is_ok(),
                _ => true,
            };
            if !ok {
                return Err(bad_line(n, line, "bad number"));
            }
            seen |= match k {
                "avg10" => 1,
                "avg60" => 2,
                "avg300" => 4,
                "total" => 8,
                _ => 0,
            };
        }
        if seen != 15 {
            return Err(bad_line(n, line, "missing avg10, avg60, avg300 or total"));
        }
        match kind {
            "some" => some = Some(l),
            "full" => full = Some(l),
            _ => return Err(bad_line(n, line, "expected `some` or `full`")),
        }
    }
    let some = some.ok_or_else(|| "no `some` line".to_string())?;
    Ok(Psi { some, full })
}

/// `/proc/<pid>/net/dev`. Fills `out`, reusing its entries' name buffers.
pub fn net_dev(content: &str, out: &mut Vec<InterfaceStats>) -> Result<(), Reason> {
    net_dev_except(content, out, |_| false)
}

/// As `net_dev`, leaving out the interfaces `skip` names (never stored, so nothing allocated).
pub fn net_dev_except(
    content: &str,
    out: &mut Vec<InterfaceStats>,
    skip: impl Fn(&str) -> bool,
) -> Result<(), Reason> {
    let mut used = 0;
    let mut first_err = None;
    // Two header lines, then `iface: 8 receive and 8 transmit columns`.
    for (n, line) in content.lines().enumerate().skip(2) {
        let Some((name, rest)) = line.split_once(':').filter(|(n, _)| !n.trim().is_empty()) else {
            if !line.trim().is_empty() {
                first_err.get_or_insert_with(|| bad_line(n, line, "expected `iface:`"));
            }
            continue;
        };
        let mut cols = [0u64; 16];
        let mut count = 0;
        let mut bad = false;
        for w in rest.split_ascii_whitespace() {
            if count == 16 {
                bad = true;
                break;
            }
            match w.parse::<u64>() {
                Ok(v) => cols[count] = v,
                Err(_) => {
                    bad = true;
                    break;
                }
            }
            count += 1;
        }
        if bad || count != 16 {
            first_err.get_or_insert_with(|| bad_line(n, line, "expected 16 counters"));
            continue;
        }
        if skip(name.trim()) {
            continue;
        }
        if used == out.len() {
            out.push(InterfaceStats::default());
        }
        let e = &mut out[used];
        used += 1;
        e.name.clear();
        e.name.push_str(name.trim());
        e.rx_bytes = cols[0];
        e.rx_packets = cols[1];
        e.rx_errors = cols[2];
        e.rx_dropped = cols[3];
        e.tx_bytes = cols[8];
        e.tx_packets = cols[9];
        e.tx_errors = cols[10];
        e.tx_dropped = cols[11];
    }
    out.truncate(used);
    first_err.map_or(Ok(()), Err)
}

/// `MAJ:MIN`.
pub fn major_minor(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The state letter of `/proc/<pid>/stat` (or a task's stat): the field after the last `)`,
/// since the command name in parentheses may itself hold spaces and parentheses.
pub fn task_state(content: &str) -> Option<u8> {
    let after = &content[content.rfind(')')? + 1..];
    after.split_ascii_whitespace().next()?.bytes().next()
}

/// The fields of `/proc/<pid>/stat` a process listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    /// Between the first `(` and the last `)`: it may hold spaces and parentheses.
    pub comm: &'a str,
    /// State letter (`R`, `S`, `D`, `Z`, ...; field 3).
    pub state: u8,
    /// Parent pid (field 4).
    pub ppid: u32,
    /// User time in clock ticks (field 14).
    pub utime: u64,
    /// System time in clock ticks (field 15).
    pub stime: u64,
    /// Threads in the process (field 20).
    pub threads: u64,
    /// Clock ticks after boot.
    pub start_ticks: u64,
    /// Resident set size in pages (field 24).
    pub rss_pages: u64,
}

/// `/proc/<pid>/stat`: `pid (comm) state ppid ...`; the fields are counted from the last `)`.
pub fn pid_stat(content: &str) -> Result<PidStat<'_>, Reason> {
    let bad = |what: &str| format!("{what}: {:?}", truncate(content.trim_end()));
    let open = content.find('(').ok_or_else(|| bad("no `(`"))?;
    let close = content.rfind(')').ok_or_else(|| bad("no `)`"))?;
    if close < open {
        return Err(bad("`)` before `(`"));
    }
    let comm = &content[open + 1..close];
    // Fields 3 (state) to 24 (rss): indexes 0 to 21 after the `)`.
    let mut f = [""; 22];
    let mut words = content[close + 1..].split_ascii_whitespace();
    for slot in &mut f {
        *slot = words.next().ok_or_else(|| bad("fewer than 24 fields"))?;
    }
    let num = |i: usize| {
        f[i].parse::<u64>()
            .map_err(|_| bad("a field is not a number"))
    };
    let state = match f[0].as_bytes() {
        [s] => *s,
        _ => return Err(bad("the state is not one letter")),
    };
    Ok(PidStat {
        comm,
        state,
        ppid: f[1].parse().map_err(|_| bad("bad ppid"))?,
        utime: num(11)?,
        stime: num(12)?,
        threads: num(17)?,
        start_ticks: num(19)?,
        rss_pages: num(21)?,
    })
}

/// The effective uid in `/proc/<pid>/status` (`Uid:  real  effective  saved  fs`), the one
/// `ps -o user` shows.
pub fn status_euid(content: &str) -> Result<u32, Reason> {
    let row = content
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .ok_or_else(|| "no \"Uid:\" row".to_string())?;
    let w = row.split_ascii_whitespace().nth(1).unwrap_or("");
    w.parse()
        .map_err(|_| format!("not an effective uid: {:?}", truncate(row.trim())))
}

/// The boot time in `/proc/stat` (`btime <unix seconds>`).
pub fn btime(content: &str) -> Result<u64, Reason> {
    let row = content
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or_else(|| "no \"btime\" row".to_string())?;
    single_u64(row)
}

fn bad_line(n: usize, line: &str, what: &str) -> Reason {
    format!("line {}: {what}: {:?}", n + 1, truncate(line))
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
