//! `/proc/<pid>/mountinfo` (proc(5)): enough of it to find cgroup mounts and, later, overlay
//! upper directories. Paths are unescaped (the kernel writes space, tab, newline and backslash
//! as `\040`, `\011`, `\012`, `\134`).

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of the mount (field 1).
    pub mount_id: u32,
    /// Id of the parent mount (field 2).
    pub parent_id: u32,
    /// Major number of the filesystem's device (field 3).
    pub major: u32,
    /// Minor number of the filesystem's device.
    pub minor: u32,
    /// The directory inside the filesystem that is mounted here.
    pub root: String,
    /// Where it is mounted, relative to the reading process's root, unescaped.
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Filesystem type (`cgroup2`, `overlay`, `ext4`).
    pub fs_type: String,
    /// Mount source (`/dev/vda1`, `overlay`), unescaped.
    pub source: String,
    /// Superblock options: the controllers of a v1 cgroup mount, an overlay's `upperdir`; empty
    /// when absent.
    pub super_options: String,
}

impl MountEntry {
    /// Whether a comma separated super option (`cpu`, `memory`, `name=systemd`) is present.
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.split(',').any(|o| o == opt)
    }
}

/// Parses every line; bad lines are skipped and the first is reported with the good entries.
pub fn parse(content: &str) -> (Vec<MountEntry>, Option<String>) {
    let mut out = Vec::new();
    let mut first_err = None;
    for (n, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(m) => out.push(m),
            None => {
                first_err.get_or_insert_with(|| format!("line {}: not a mountinfo row", n + 1));
            }
        }
    }
    (out, first_err)
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // Fields before the ` - ` separator, then fstype, source, super options.
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let mount_id = l.next()?.parse().ok()?;
    let parent_id = l.next()?.parse().ok()?;
    let (major, minor) = crate::parse::major_minor(l.next()?)?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let mount_options = l.next()?.to_string();
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let source = unescape(r.next()?);
    let super_options = r.next().unwrap_or("").to_string();
    Some(MountEntry {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
    })
}

/// Undo the kernel's octal escapes (`\040` and friends). Anything malformed is kept as is.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if v <= 255 {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_rows_and_unescapes() {
        let text = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n\
                    50 27 0:40 / /mnt/with\\040space\\134x rw - overlay overlay rw,upperdir=/a\\054b\n\
                    garbage\n";
        let (m, err) = parse(text);
        assert_eq!(m.len(), 3);
        assert!(m[0].has_super_option("cpu"));
        assert!(!m[0].has_super_option("cpuacct"));
        assert_eq!(m[1].fs_type, "cgroup2");
        assert_eq!(m[1].mount_point, "/sys/fs/cgroup/unified");
        assert_eq!(m[2].mount_point, "/mnt/with space\\x");
        assert_eq!(err.as_deref(), Some("line 4: not a mountinfo row"));
    }

    #[test]
    fn unescape_keeps_malformed_escapes() {
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999b"), "a\\999b");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("x\\011y"), "x\ty");
    }
}
