//! Parsing each kind of cgroup file the readers take, from real kernel captures in
//! `tests/fixtures` (the v1 hybrid Docker container and the v2 Kubernetes tree), beside the
//! obvious alternative: splitting into owned strings and collecting into a `HashMap` or `Vec`,
//! as a first version (or a generic library) would. No root needed; nothing is written.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use collector_core::parse;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// The only subdirectory of `dir` (the Docker container's directory in a controller).
fn only_child(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("fixture directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a container directory")
}

fn v1(ctrl: &str, file: &str) -> String {
    let dir = only_child(&Path::new(FIXTURES).join(format!(
        "cgroup-v1-hybrid-docker/sys/fs/cgroup/{ctrl}/docker"
    )));
    std::fs::read_to_string(dir.join(file)).expect("fixture file")
}

fn v2(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(FIXTURES)
            .join("cgroup-v2-kubepods/sys/fs/cgroup/kubepods.slice")
            .join(file),
    )
    .expect("fixture file")
}

fn net_dev_text() -> String {
    let proc = Path::new(FIXTURES).join("cgroup-v1-hybrid-docker/proc");
    std::fs::read_dir(&proc)
        .expect("fixture /proc")
        .filter_map(Result::ok)
        .map(|e| e.path().join("net/dev"))
        .find(|p| p.exists())
        .map(|p| std::fs::read_to_string(p).expect("net/dev"))
        .expect("a net/dev capture")
}

/// `key value` lines into a map of owned keys.
fn naive_flat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// `MAJ:MIN key=value ...` (io.stat) or `some avg10=... total=...` (PSI) into nested maps.
fn naive_nested(text: &str) -> HashMap<String, HashMap<String, String>> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let head = w.next()?.to_string();
            let kv = w
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some((head, kv))
        })
        .collect()
}

/// `MAJ:MIN Op value` rows (v1 blkio) into owned tuples.
fn naive_blkio(text: &str) -> Vec<(String, String, u64)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() != 3 {
                return None;
            }
            Some((w[0].to_string(), w[1].to_string(), w[2].parse().ok()?))
        })
        .collect()
}

/// net/dev rows into (name, 16 counters).
fn naive_net_dev(text: &str) -> Vec<(String, Vec<u64>)> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let cols: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            Some((name.trim().to_string(), cols))
        })
        .collect()
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));

    let text = v1("memory", "memory.stat");
    g.bench_function("v1-memory.stat/ours", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            parse::flat_keyed(black_box(&text), |k, v| {
                if k.starts_with("total_") {
                    sum = sum.wrapping_add(v);
                }
            })
            .unwrap();
            sum
        })
    });
    g.bench_function("v1-memory.stat/hashmap", |b| {
        b.iter(|| naive_flat(black_box(&text)))
    });

    let text = v1("cpuacct", "cpuacct.usage_percpu");
    let mut out = Vec::new();
    g.bench_function("v1-cpuacct.usage_percpu/ours", |b| {
        b.iter(|| parse::u64_list(black_box(&text), &mut out).map(|_| out.len()))
    });
    g.bench_function("v1-cpuacct.usage_percpu/vec", |b| {
        b.iter(|| {
            black_box(&text)
                .split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
    });

    let text = v1("blkio", "blkio.throttle.io_service_bytes_recursive");
    g.bench_function("v1-blkio.throttle/ours", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            parse::blkio_v1(black_box(&text), |_, _, _, v| sum = sum.wrapping_add(v)).unwrap();
            sum
        })
    });
    g.bench_function("v1-blkio.throttle/vec", |b| {
        b.iter(|| naive_blkio(black_box(&text)))
    });

    let text = v1("cpu", "cpu.stat");
    g.bench_function("v1-cpu.stat/ours", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            parse::flat_keyed(black_box(&text), |_, v| sum = sum.wrapping_add(v)).unwrap();
            sum
        })
    });
    g.bench_function("v1-cpu.stat/hashmap", |b| {
        b.iter(|| naive_flat(black_box(&text)))
    });

    let text = v2("memory.stat");
    g.bench_function("v2-memory.stat/ours", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            parse::flat_keyed(black_box(&text), |_, v| sum = sum.wrapping_add(v)).unwrap();
            sum
        })
    });
    g.bench_function("v2-memory.stat/hashmap", |b| {
        b.iter(|| naive_flat(black_box(&text)))
    });

    let text = v2("io.stat");
    g.bench_function("v2-io.stat/ours", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            parse::nested_keyed(black_box(&text), |_, _, pairs| {
                for (_, v) in pairs {
                    sum = sum.wrapping_add(v);
                }
            })
            .unwrap();
            sum
        })
    });
    g.bench_function("v2-io.stat/hashmap", |b| {
        b.iter(|| naive_nested(black_box(&text)))
    });

    let text = v2("cpu.pressure");
    g.bench_function("v2-cpu.pressure/ours", |b| {
        b.iter(|| parse::psi(black_box(&text)).unwrap())
    });
    g.bench_function("v2-cpu.pressure/hashmap", |b| {
        b.iter(|| naive_nested(black_box(&text)))
    });

    let text = v2("cpu.max");
    g.bench_function("v2-cpu.max/ours", |b| {
        b.iter(|| parse::cpu_max(black_box(&text)).unwrap())
    });
    g.bench_function("v2-cpu.max/split", |b| {
        b.iter(|| {
            let w: Vec<String> = black_box(&text)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            (
                w[0].parse::<u64>().ok(),
                w.get(1).and_then(|p| p.parse::<u64>().ok()),
            )
        })
    });

    let text = net_dev_text();
    let mut out = Vec::new();
    g.bench_function("net-dev/ours", |b| {
        b.iter(|| parse::net_dev(black_box(&text), &mut out).map(|_| out.len()))
    });
    g.bench_function("net-dev/vec", |b| {
        b.iter(|| naive_net_dev(black_box(&text)))
    });
    g.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
