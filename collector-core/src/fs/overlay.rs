//! The writable layer of an overlay-rooted process, from its `/proc/<pid>/mountinfo`.
//!
//! Two layers of escaping sit on an `upperdir=` value. mountinfo writes space, tab, newline and
//! backslash as octal (`\040`, `\011`, `\012`, `\134`), and overlayfs also escapes `,` and `=`
//! in its options (`\054`, `\075`) so that a comma in a path does not split the option list.
//! Since Linux 6.5 overlayfs keeps the path as it was given to mount(2), where a comma had to
//! be written `\,`: such a path shows as `up\134\054dir` and is `up,dir` on disk. Older kernels
//! stored it unescaped (`up\054dir`). [`root_upperdir`] gives both readings when they differ;
//! the caller keeps the one that exists.

use crate::mountinfo;

/// The upper directory of a root overlay, as the mounting process named it (a host path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpperDir {
    /// With overlayfs's own backslash escapes undone (`\,` -> `,`): the path on disk on 6.5+.
    pub path: String,
    /// The value with only mountinfo's octal escapes undone; differs from `path` only when
    /// the value holds a backslash (older kernels show a literal backslash this way).
    pub literal: String,
}

impl UpperDir {
    /// The readings to try, most likely first, without repeats.
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        let second = (self.literal != self.path).then_some(self.literal.as_str());
        std::iter::once(self.path.as_str()).chain(second)
    }
}

/// What the process's root mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootMount {
    /// An overlay with a writable upper directory (Docker, containerd, Podman, CRI-O).
    Overlay(UpperDir),
    /// An overlay without `upperdir` (read-only, all lower layers).
    ReadOnlyOverlay,
    /// Another filesystem type (a host process, a runc bundle on a plain directory).
    Other(String),
    /// No mount at `/` in the table.
    Missing,
}

/// Finds the mount at `/` (the last one: a later row over-mounts an earlier) and, for an
/// overlay, its `upperdir`. Never panics; rows that do not parse are skipped.
pub fn root_mount(mountinfo_text: &str) -> RootMount {
    let (mounts, _) = mountinfo::parse(mountinfo_text);
    let Some(root) = mounts.iter().rev().find(|m| m.mount_point == "/") else {
        return RootMount::Missing;
    };
    if root.fs_type != "overlay" {
        return RootMount::Other(root.fs_type.clone());
    }
    match option_value(&root.super_options, "upperdir") {
        Some(v) => RootMount::Overlay(upper_from_option(v)),
        None => RootMount::ReadOnlyOverlay,
    }
}

/// The root overlay's upper directory, if the root is a writable overlay.
pub fn root_upperdir(mountinfo_text: &str) -> Option<UpperDir> {
    match root_mount(mountinfo_text) {
        RootMount::Overlay(u) => Some(u),
        _ => None,
    }
}

/// The raw (still escaped) value of `key=` in a comma separated option list. Commas inside
/// values are escaped by the kernel, so splitting on `,` is exact.
pub fn option_value<'a>(options: &'a str, key: &str) -> Option<&'a str> {
    options.split(',').find_map(|o| {
        let (k, v) = o.split_once('=')?;
        (k == key).then_some(v)
    })
}

/// Decodes an `upperdir=` value taken from mountinfo.
pub fn upper_from_option(raw: &str) -> UpperDir {
    let literal = mountinfo::unescape(raw);
    let path = overlay_unescape(&literal);
    UpperDir { path, literal }
}

/// overlayfs's option unescaping: a backslash makes the next character literal.
pub fn overlay_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOCKER: &str = "74 49 0:39 / / rw,relatime master:3 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/NHAT:/var/lib/docker/overlay2/l/KZUI,upperdir=/var/lib/docker/overlay2/35ca/diff,workdir=/var/lib/docker/overlay2/35ca/work\n\
        75 74 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n";

    #[test]
    fn docker_root() {
        let u = root_upperdir(DOCKER).unwrap();
        assert_eq!(u.path, "/var/lib/docker/overlay2/35ca/diff");
        assert_eq!(u.candidates().count(), 1);
    }

    #[test]
    fn escaped_spaces_and_commas_new_and_old_kernels() {
        // Linux 6.18 (captured): the `\,` given to mount(2) is kept and shown as \134\054.
        let new = "69 44 0:39 / / rw,relatime - overlay overlay rw,lowerdir=/tmp/ccol\\040ovl/lower,upperdir=/tmp/ccol\\040ovl/up\\040per\\134\\054dir,workdir=/tmp/ccol\\040ovl/work\n";
        let u = root_upperdir(new).unwrap();
        assert_eq!(u.path, "/tmp/ccol ovl/up per,dir");
        assert_eq!(u.literal, "/tmp/ccol ovl/up per\\,dir");
        assert_eq!(
            u.candidates().collect::<Vec<_>>(),
            ["/tmp/ccol ovl/up per,dir", "/tmp/ccol ovl/up per\\,dir"]
        );
        // Before 6.5: stored unescaped, shown with seq_show_option's \054.
        let old = "69 44 0:39 / / rw - overlay overlay rw,lowerdir=/l,upperdir=/a\\040b\\054c/diff,workdir=/w\n";
        assert_eq!(root_upperdir(old).unwrap().path, "/a b,c/diff");
    }

    #[test]
    fn last_root_wins_and_other_roots() {
        let stacked = format!("20 1 254:0 / / rw - ext4 /dev/vda rw\n{DOCKER}");
        assert!(root_upperdir(&stacked).is_some());
        let over = format!("{DOCKER}99 74 254:0 / / rw - ext4 /dev/vda rw\n");
        assert_eq!(root_mount(&over), RootMount::Other("ext4".into()));
        assert_eq!(
            root_mount("75 74 0:42 / /proc rw - proc proc rw\n"),
            RootMount::Missing
        );
        assert_eq!(
            root_mount("1 0 0:9 / / ro - overlay overlay ro,lowerdir=/a:/b\n"),
            RootMount::ReadOnlyOverlay
        );
        assert_eq!(root_mount(""), RootMount::Missing);
    }

    #[test]
    fn option_values() {
        assert_eq!(
            option_value("rw,upperdir=/x,workdir=/y", "upperdir"),
            Some("/x")
        );
        assert_eq!(option_value("rw,upperdirx=/x", "upperdir"), None);
        assert_eq!(option_value("rw,upperdir=", "upperdir"), Some(""));
        assert_eq!(overlay_unescape("a\\,b\\\\c\\"), "a,b\\c\\");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = root_mount(&s);
            let _ = overlay_unescape(&s);
            let _ = upper_from_option(&s);
        }

        #[test]
        fn never_panics_on_plausible_rows(opts in prop::collection::vec(prop_oneof![
            Just("upperdir=".to_string()), Just("\\054".to_string()), Just("\\134".to_string()),
            Just("\\".to_string()), Just(",".to_string()), Just("=".to_string()),
            "[a-z/ ]{0,6}",
        ], 0..12)) {
            let row = format!("1 0 0:9 / / rw - overlay overlay {}\n", opts.concat());
            let _ = root_mount(&row);
        }

        // Any path, escaped the way a 6.5+ kernel shows it, decodes back to itself.
        #[test]
        fn escaped_paths_round_trip(p in "/[a-z ,=\\\\\t]{0,20}") {
            let mut given = String::new();
            for c in p.chars() {
                if matches!(c, ',' | '\\') { given.push('\\'); }
                given.push(c);
            }
            let mut shown = String::new();
            for c in given.chars() {
                match c {
                    ' ' => shown.push_str("\\040"),
                    '\t' => shown.push_str("\\011"),
                    '\\' => shown.push_str("\\134"),
                    ',' => shown.push_str("\\054"),
                    '=' => shown.push_str("\\075"),
                    c => shown.push(c),
                }
            }
            let row = format!("1 0 0:9 / / rw - overlay overlay rw,upperdir={shown},workdir=/w\n");
            prop_assert_eq!(root_upperdir(&row).unwrap().path, p);
        }
    }
}
