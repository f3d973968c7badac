//! Block device names from major:minor numbers, through `<sys_root>/dev/block/M:m/uevent`.
//! Looked up once per device and remembered; a device that does not resolve stays unnamed
//! (the numbers are still reported) and is retried when the cache is refreshed.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug)]
pub struct DeviceNames {
    sys_root: PathBuf,
    names: HashMap<(u32, u32), Option<String>>,
}

impl DeviceNames {
    pub fn new(sys_root: impl Into<PathBuf>) -> Self {
        DeviceNames {
            sys_root: sys_root.into(),
            names: HashMap::new(),
        }
    }

    /// The kernel's name for the device (`vda`, `sda1`, `nullb0`).
    pub fn name(&mut self, major: u32, minor: u32) -> Option<&str> {
        let sys_root = &self.sys_root;
        self.names
            .entry((major, minor))
            .or_insert_with(|| {
                let path = sys_root.join(format!("dev/block/{major}:{minor}/uevent"));
                let text = std::fs::read_to_string(path).ok()?;
                text.lines()
                    .find_map(|l| l.strip_prefix("DEVNAME="))
                    .map(|n| n.trim().to_string())
            })
            .as_deref()
    }

    /// Forgets devices that did not resolve, so hot-plugged ones get named.
    pub fn retry_unknown(&mut self) {
        self.names.retain(|_, v| v.is_some());
    }
}
