//! Figures about the machine itself, read each sweep (cheap: two small files).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::Reader;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStats {
    /// Online logical CPUs (`<sys_root>/devices/system/cpu/online`).
    pub cpu_cores: Option<u64>,
    /// `MemTotal` of `<proc_root>/meminfo`, in bytes.
    pub memory_bytes: Option<u64>,
    /// `SwapTotal`, in bytes.
    pub swap_bytes: Option<u64>,
}

pub fn read(r: &mut Reader, proc_root: &Path, sys_root: &Path, out: &mut MachineStats) {
    out.cpu_cores = r.parsed(&sys_root.join("devices/system/cpu"), "online", cpu_list_len);
    out.memory_bytes = None;
    out.swap_bytes = None;
    if let Some(text) = r.read(proc_root, "meminfo") {
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(key), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            let kib = v.parse::<u64>().ok();
            match key {
                "MemTotal:" => out.memory_bytes = kib.map(|k| k * 1024),
                "SwapTotal:" => out.swap_bytes = kib.map(|k| k * 1024),
                _ => {}
            }
        }
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,8,10-11`.
pub fn cpu_list_len(text: &str) -> Result<u64, String> {
    let mut n = 0u64;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            return Err(format!("not a CPU list: {part:?}"));
        };
        if b < a {
            return Err(format!("descending CPU range: {part:?}"));
        }
        n += b - a + 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        use super::cpu_list_len;
        assert_eq!(cpu_list_len("0-1\n"), Ok(2));
        assert_eq!(cpu_list_len("0-3,8,10-11"), Ok(7));
        assert_eq!(cpu_list_len("5"), Ok(1));
        assert!(cpu_list_len("3-1").is_err());
        assert!(cpu_list_len("a").is_err());
    }
}
