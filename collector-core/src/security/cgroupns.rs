//! Host cgroup paths from `/proc/<pid>/cgroup` when the collector runs in a cgroup namespace
//! of its own (a container on a cgroup v2 host gets one by default). The kernel writes those
//! paths relative to the reader's namespace root (`/../../kubepods/...`), while the collector
//! names containers by their host paths (it reads the host's cgroupfs); the root's host path
//! is found once, by looking for this process in the hierarchy.

use std::path::Path;

use super::inspect::cgroup_path;
use crate::hierarchy::{Controller, Hierarchy, Roots, Setup};

/// Directories looked through at most when finding this process's cgroup.
const WALK_MAX: usize = 200_000;

/// The host path of this process's cgroup namespace root, when that is not the host's root:
/// `None` in the host's namespace, and when it cannot be told (the host's PID 1 not visible,
/// or this process not found in the hierarchy; a warning says so).
pub fn namespace_root(roots: &Roots, hierarchy: &Hierarchy) -> Option<String> {
    let setup = hierarchy.setup;
    let read = |pid: &str| std::fs::read_to_string(roots.proc_root.join(pid).join("cgroup")).ok();
    let init = read("1")?;
    // The host's PID 1 is in the host's root cgroup (or just below): seen from a namespace
    // of our own, its path climbs out of it.
    if !cgroup_path(&init, setup)?.starts_with("/..") {
        return None;
    }
    let me = std::fs::read_link(roots.proc_root.join("self"))
        .ok()?
        .to_string_lossy()
        .into_owned();
    let mine = read(&me)?;
    let mine = cgroup_path(&mine, setup)?.to_owned();
    let mount = match setup {
        Setup::Unified => hierarchy.unified.as_ref(),
        Setup::Legacy | Setup::Hybrid => [Controller::Memory, Controller::Pids, Controller::Cpu]
            .into_iter()
            .find_map(|c| hierarchy.v1(c))
            .or(hierarchy.unified.as_ref()),
    }?;
    let Some(host) = find_pid(&mount.path, &me) else {
        tracing::warn!(
            "in a cgroup namespace of its own, and its cgroup could not be found under {}: execs \
             are not attributed to containers (run with the host's cgroup namespace)",
            mount.path.display()
        );
        return None;
    };
    let host = join(&mount.root, &host);
    // Our path in the namespace is the part of our host path below its root.
    let root = if mine == "/" {
        host
    } else {
        host.strip_suffix(mine.as_str())?.to_owned()
    };
    Some(if root.is_empty() { "/".into() } else { root })
}

/// The cgroup (a path below `mount`, `/` for its top) whose `cgroup.procs` lists `pid`.
fn find_pid(mount: &Path, pid: &str) -> Option<String> {
    let mut stack = vec![mount.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > WALK_MAX {
            return None;
        }
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            if procs.lines().any(|l| l.trim() == pid) {
                let rel = dir.strip_prefix(mount).ok()?;
                return Some(format!("/{}", rel.to_string_lossy()));
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    None
}

/// `path` (from `/proc/<pid>/cgroup`, relative to the namespace root) as a host path.
pub fn resolve(root: &str, path: &str) -> String {
    let mut parts: Vec<&str> = root.split('/').filter(|p| !p.is_empty()).collect();
    for p in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if p == ".." {
            parts.pop();
        } else {
            parts.push(p);
        }
    }
    format!("/{}", parts.join("/"))
}

fn join(base: &str, rel: &str) -> String {
    resolve(base, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_and_inside_the_namespace() {
        let root = "/kubepods.slice/pod1.slice/cri-abc.scope";
        assert_eq!(
            resolve(root, "/../../pod2.slice/cri-def.scope"),
            "/kubepods.slice/pod2.slice/cri-def.scope"
        );
        assert_eq!(resolve(root, "/"), root);
        assert_eq!(resolve(root, "/sub"), format!("{root}/sub"));
        assert_eq!(resolve("/a", "/../../../.."), "/");
        assert_eq!(resolve("/", "/docker/x"), "/docker/x");
    }

    #[test]
    fn this_process_is_found_in_its_hierarchy() {
        let Some(init) = std::fs::read_to_string("/proc/self/cgroup").ok() else {
            return;
        };
        let hier = Hierarchy::detect(&Roots::default()).expect("a hierarchy");
        let mount = match hier.setup {
            Setup::Unified => hier.unified.clone(),
            _ => hier.v1(Controller::Memory).cloned(),
        }
        .expect("a mount");
        let me = std::process::id().to_string();
        let found = find_pid(&mount.path, &me).expect("this process in the hierarchy");
        let mine = cgroup_path(&init, hier.setup).expect("its own path");
        assert_eq!(join(&mount.root, &found), mine);
        // In the host's namespace: nothing to resolve.
        assert_eq!(namespace_root(&Roots::default(), &hier), None);
    }
}
