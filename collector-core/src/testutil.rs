//! Shared by the unit tests.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use serde_reflection::{ContainerFormat, Format, Registry, Tracer, TracerConfig};

use crate::fs::FsConfig;
use crate::stats::ContainerStats;
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
        // The captures hold cgroupfs and a few /proc files, not the processes' descriptors.
        processes: false,
        fs: FsConfig {
            container_layers: false,
            machine_filesystems: false,
            // Not this host's /etc/machine-id.
            rootfs: root.clone(),
            ..FsConfig::default()
        },
        ..Config::default()
    })
    .expect("the fixture tree")
}

/// The leaves of a JSON tree that hold a value, by path (`.cpu.usage_ns`; list items `[]`).
pub fn filled(v: &Value, path: String, out: &mut BTreeSet<String>) {
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                filled(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for v in a {
                filled(v, format!("{path}[]"), out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The serde shape of `ContainerStats` and the types in it.
fn stats_registry() -> Registry {
    let mut tracer = Tracer::new(TracerConfig::default());
    // Enums first: the tracer must know their variants before a struct holding them.
    tracer
        .trace_simple_type::<crate::stats::NetworkStatus>()
        .expect("NetworkStatus traces");
    tracer
        .trace_simple_type::<crate::stats::LoadSource>()
        .expect("LoadSource traces");
    tracer
        .trace_simple_type::<ContainerStats>()
        .expect("ContainerStats traces");
    tracer.registry().expect("a complete registry")
}

const ROOT: &str = "ContainerStats";

/// The path of every figure in `ContainerStats`, as `filled` writes them.
pub fn every_field() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    filled(&every_field_filled(), String::new(), &mut out);
    out
}

/// `ContainerStats` as JSON with every optional part present and every list one long: each
/// integer leaf a distinct number, floats distinct fractions, strings their path, enums their
/// first variant.
pub fn every_field_filled() -> Value {
    fn make(reg: &Registry, f: &Format, path: &str, n: &mut u64) -> Value {
        *n += 1;
        match f {
            Format::Option(inner) => make(reg, inner, path, n),
            Format::Seq(inner) => Value::Array(vec![make(reg, inner, &format!("{path}[]"), n)]),
            Format::TypeName(name) => match reg.get(name) {
                Some(ContainerFormat::Struct(fields)) => Value::Object(
                    fields
                        .iter()
                        .map(|fd| {
                            let p = format!("{path}.{}", fd.name);
                            (fd.name.clone(), make(reg, &fd.value, &p, n))
                        })
                        .collect(),
                ),
                Some(ContainerFormat::Enum(variants)) => {
                    Value::String(variants.values().next().expect("a variant").name.clone())
                }
                other => panic!("{path}: no filler for {other:?}"),
            },
            Format::Str => Value::String(format!("v{path}")),
            Format::F32 | Format::F64 => Value::from(*n as f64 / 1000.0),
            Format::Bool => Value::Bool(true),
            _ => Value::from(*n * 1000),
        }
    }
    let reg = stats_registry();
    make(&reg, &Format::TypeName(ROOT.into()), "", &mut 0)
}

/// Every enum leaf's variants, by path, for changing one.
#[cfg(all(
    feature = "prometheus",
    feature = "influxdb",
    feature = "elasticsearch"
))]
pub fn enum_variants() -> Vec<(String, Vec<String>)> {
    fn walk(reg: &Registry, f: &Format, path: String, out: &mut Vec<(String, Vec<String>)>) {
        match f {
            Format::Option(inner) => walk(reg, inner, path, out),
            Format::Seq(inner) => walk(reg, inner, format!("{path}[]"), out),
            Format::TypeName(name) => match reg.get(name) {
                Some(ContainerFormat::Struct(fields)) => {
                    for fd in fields {
                        walk(reg, &fd.value, format!("{path}.{}", fd.name), out);
                    }
                }
                Some(ContainerFormat::Enum(v)) => {
                    out.push((path, v.values().map(|v| v.name.clone()).collect()));
                }
                _ => {}
            },
            _ => {}
        }
    }
    let reg = stats_registry();
    let mut out = Vec::new();
    walk(
        &reg,
        &Format::TypeName(ROOT.into()),
        String::new(),
        &mut out,
    );
    out
}
