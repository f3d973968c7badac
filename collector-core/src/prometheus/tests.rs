//! The text writer against `prometheus-client`'s encoders: the same bytes, both formats.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::*;

/// A real sweep of a kernel capture, plus a copy of its first container whose name, image and
/// labels need escaping.
fn snapshot(fixture: &str) -> Snapshot {
    let mut s = crate::testutil::fixture_collector(fixture).sweep();
    assert!(!s.containers.is_empty(), "{fixture}: no containers");
    // The host's filesystems are not read from a capture: one of each kind, so their families
    // are compared too (a mount point that needs escaping, a filesystem without inode counts).
    s.machine.filesystems = vec![
        crate::machine::Filesystem {
            device: Some("vda1".into()),
            source: "/dev/vda1".into(),
            mountpoint: "/var/lib/\"odd\"".into(),
            fstype: "ext4".into(),
            size_bytes: 1 << 30,
            free_bytes: 1 << 29,
            avail_bytes: 1 << 28,
            files: Some(65536),
            files_free: Some(1000),
            ..Default::default()
        },
        crate::machine::Filesystem {
            source: "server:/export".into(),
            mountpoint: "/mnt/nfs".into(),
            fstype: "nfs4".into(),
            size_bytes: 1 << 40,
            ..Default::default()
        },
    ];
    // The machine named as cAdvisor names it; no DMI here (a VM without it), so no system_uuid.
    s.machine.identity = crate::machine::MachineIdentity {
        boot_id: Some("b-1".into()),
        machine_id: Some("m-1".into()),
        system_uuid: None,
    };
    let mut odd = s.containers[0].clone();
    odd.id.push_str("/odd");
    odd.meta.name = Some("quote\" back\\slash new\nline".into());
    odd.meta.image = Some("img:1".into());
    odd.meta.pod = Some(String::new()); // empty: no label
    odd.meta
        .labels
        .insert("app.kubernetes.io/name".into(), "web \"1\"".into());
    odd.meta.labels.insert("tier".into(), "back\\end".into());
    s.containers.push(odd);
    s
}

fn options() -> Options {
    Options {
        label_allowlist: vec![
            "app.kubernetes.io/name".into(),
            "tier".into(),
            "none".into(),
        ],
    }
}

fn through_client(s: Snapshot, format: Format) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(SnapshotCollector::new(
        Arc::new(s),
        Arc::new(options()),
    )));
    let mut out = String::new();
    encode(&mut out, &reg, format).expect("encoding into a String");
    out
}

#[test]
fn the_text_writer_writes_what_prometheus_client_writes() {
    for fixture in ["cgroup-v1-hybrid-docker", "cgroup-v2-kubepods"] {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let s = snapshot(fixture);
            let ours = render(&s, &options(), format);
            let theirs = through_client(s, format);
            if ours != theirs {
                let (a, b): (Vec<_>, Vec<_>) = (ours.lines().collect(), theirs.lines().collect());
                let at = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                panic!(
                    "{fixture} {format:?}: line {at} differs:\n ours:   {:?}\n theirs: {:?}",
                    a.get(at),
                    b.get(at)
                );
            }
            let samples = ours.lines().filter(|l| !l.starts_with('#')).count();
            assert!(samples > 60, "{fixture}: only {samples} samples");
            assert!(ours.contains("container_cpu_usage_seconds_total{id=\""));
            assert!(ours.contains(
                "\nmachine_cpu_seconds_total{boot_id=\"b-1\",machine_id=\"m-1\",mode=\"user\"} "
            ));
            assert!(ours.contains(r#"mountpoint="/var/lib/\"odd\"""#));
            assert!(ours.contains(
                "machine_filesystem_files{boot_id=\"b-1\",machine_id=\"m-1\",device=\"/dev/vda1\""
            ));
            assert!(ours.contains(r#"name="quote\" back\\slash new\nline""#));
            assert!(ours.contains(r#"container_label_app_kubernetes_io_name="web \"1\"""#));
            assert!(!ours.contains("pod=\"\""));
            assert_eq!(format == Format::OpenMetrics, ours.ends_with("# EOF\n"));
        }
    }
}

#[test]
fn counters_are_named_as_each_format_wants() {
    let s = snapshot("cgroup-v1-hybrid-docker");
    let text = render(&s, &Options::default(), Format::PrometheusText);
    assert!(text.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    let om = render(&s, &Options::default(), Format::OpenMetrics);
    assert!(om.contains("# TYPE container_cpu_usage_seconds counter\n"));
    assert!(om.contains("\ncontainer_cpu_usage_seconds_total{"));
    // Bytes are integers, exactly.
    assert!(text.contains("\ncontainer_memory_usage_bytes{"));
    let line = text
        .lines()
        .find(|l| l.starts_with("container_memory_usage_bytes{"))
        .expect("a memory usage sample");
    let v = line.rsplit(' ').next().unwrap_or_default();
    assert!(v.parse::<u64>().is_ok(), "not an integer: {line}");
}

#[test]
fn chunked_writing_gives_the_same_text_in_pieces_and_stops_when_told() {
    let s = snapshot("cgroup-v2-kubepods");
    let whole = render(&s, &options(), Format::PrometheusText);
    let mut pieces: Vec<String> = Vec::new();
    let mut out = String::new();
    write_chunked(
        &mut out,
        &s,
        &options(),
        Format::PrometheusText,
        4096,
        &mut |t| {
            pieces.push(std::mem::take(t));
            Ok(())
        },
    )
    .expect("nothing stops it");
    pieces.push(out);
    assert!(pieces.len() > 5, "{} pieces", pieces.len());
    let longest = whole.lines().map(str::len).max().unwrap_or(0) + 1;
    for p in &pieces[..pieces.len() - 1] {
        assert!(p.len() >= 4096 && p.len() < 4096 + longest, "{}", p.len());
        assert!(p.ends_with('\n'));
    }
    assert_eq!(pieces.concat(), whole);

    let mut calls = 0;
    let mut out = String::new();
    let r = write_chunked(
        &mut out,
        &s,
        &options(),
        Format::PrometheusText,
        4096,
        &mut |_| {
            calls += 1;
            Err(std::fmt::Error)
        },
    );
    assert!(r.is_err());
    assert_eq!(calls, 1, "writing went on after the reader left");
}
