//! Shared by the unit tests.

use std::path::Path;

use crate::fs::FsConfig;
use crate::{Collector, Config, Roots};

/// A collector over a kernel capture in `tests/fixtures`, reading nothing of this host: no
/// inotify, no netlink, no statvfs or overlay walks of the host's own filesystems.
pub fn fixture_collector(name: &str) -> Collector {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    Collector::new(Config {
        roots: Roots::under(&root),
        watch: false,
        load: false,
        fs: FsConfig {
            container_layers: false,
            machine_filesystems: false,
            ..FsConfig::default()
        },
        ..Config::default()
    })
    .expect("the fixture tree")
}
