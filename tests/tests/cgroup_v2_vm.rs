//! The collector against a real cgroup v2 kernel: `tests/vm/run.sh` boots Debian's 6.1 kernel
//! under qemu (TCG), sets up `/test.slice/{busy,mem,io,oom}` with known workloads (see
//! `tests/vm/init.sh`) and runs the `v2_probe` binary inside, which sweeps twice and prints the
//! snapshot as JSON. Needs root, apt and about 15 s; the kernel is cached in
//! `$CARGO_TARGET_DIR/vm-cache` (default `target/vm-cache`) by `tests/vm/prepare.sh`.

use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Runs the probe in the VM and returns its JSON output.
fn run_probe_in_vm() -> Value {
    let out = tests::vm::run_probe(
        env!("CARGO_BIN_EXE_v2_probe"),
        &["--sleep-ms", "1000"],
        &[("VM_TIMEOUT", "150")],
    );
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out)
        )
    })
}

fn u(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{ptr} is not a number in {v:#}"))
}

fn container<'a>(snap: &'a Value, id: &str) -> &'a Value {
    snap["containers"]
        .as_array()
        .expect("containers is an array")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| {
            let ids: Vec<&Value> = snap["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["id"])
                .collect();
            panic!("container {id} not found; found {ids:?}")
        })
}

#[test]
fn collector_reads_a_real_cgroup_v2_kernel() {
    let out = run_probe_in_vm();
    let snap = &out["second"];

    assert_eq!(
        out["hierarchy"]["setup"], "unified",
        "hierarchy: {:#}",
        out["hierarchy"]
    );
    assert_eq!(snap["setup"], "unified");
    assert_eq!(
        snap["errors"].as_array().map(Vec::len),
        Some(0),
        "sweep errors on a clean v2 kernel: {:#}",
        snap["errors"]
    );

    for id in [
        "/test.slice/busy",
        "/test.slice/mem",
        "/test.slice/io",
        "/test.slice/oom",
    ] {
        let c = container(snap, id);
        assert!(
            u(c, "/stats/pids/current") >= 1,
            "{id}: pids.current: {:#}",
            c["stats"]["pids"]
        );
        assert!(
            u(c, "/stats/cpu/usage_ns") > 0,
            "{id}: cpu: {:#}",
            c["stats"]["cpu"]
        );
    }

    // busy: a CPU burner under cpu.max "50000 100000".
    let busy = container(snap, "/test.slice/busy");
    let usage = u(busy, "/stats/cpu/usage_ns");
    let first_usage = u(&out, "/first/cpu_usage_ns/~1test.slice~1busy");
    assert!(
        usage > first_usage,
        "busy's CPU usage did not grow between sweeps: {first_usage} -> {usage}"
    );
    assert!(
        u(busy, "/stats/cpu/nr_periods") > 0,
        "busy cpu: {:#}",
        busy["stats"]["cpu"]
    );
    assert!(
        u(busy, "/stats/cpu/nr_throttled") > 0,
        "busy cpu: {:#}",
        busy["stats"]["cpu"]
    );
    assert!(
        u(busy, "/stats/cpu/throttled_ns") > 0,
        "busy cpu: {:#}",
        busy["stats"]["cpu"]
    );
    let spec = &busy["stats"]["spec"];
    assert_eq!(u(spec, "/cpu_quota_us"), 50_000, "busy spec: {spec:#}");
    assert_eq!(u(spec, "/cpu_period_us"), 100_000, "busy spec: {spec:#}");
    assert_eq!(u(spec, "/cpu_weight"), 200, "busy spec: {spec:#}");
    assert_eq!(
        u(spec, "/memory_limit_bytes"),
        256 * MIB,
        "busy spec: {spec:#}"
    );
    assert_eq!(u(spec, "/pids_limit"), 100, "busy spec: {spec:#}");
    assert_eq!(
        u(busy, "/stats/pids/limit"),
        100,
        "busy pids: {:#}",
        busy["stats"]["pids"]
    );
    let psi = &busy["stats"]["pressure"]["cpu"];
    assert!(u(psi, "/some/total_us") > 0, "busy cpu.pressure: {psi:#}");

    // mem: 32 MiB written to a tmpfs from inside the cgroup.
    let mem = container(snap, "/test.slice/mem");
    let m = &mem["stats"]["memory"];
    assert!(u(m, "/usage_bytes") >= 32 * MIB, "mem memory: {m:#}");
    assert!(u(m, "/shmem_bytes") >= 32 * MIB, "mem memory: {m:#}");
    assert!(
        mem["stats"]["spec"]["memory_limit_bytes"].is_null(),
        "mem has no limit: {:#}",
        mem["stats"]["spec"]
    );

    // io: 20 MiB read and 10 MiB written with O_DIRECT on /dev/nullb0.
    let io = container(snap, "/test.slice/io");
    let dev = io["stats"]["blkio"]
        .as_array()
        .expect("blkio is an array")
        .iter()
        .find(|d| d["device"] == "nullb0")
        .unwrap_or_else(|| panic!("no nullb0 in io's blkio: {:#}", io["stats"]["blkio"]));
    assert_eq!(
        (u(dev, "/major"), u(dev, "/minor")),
        (254, 0),
        "nullb0: {dev:#}"
    );
    assert!(u(dev, "/read_bytes") >= 20 * MIB, "nullb0: {dev:#}");
    assert!(u(dev, "/write_bytes") >= 10 * MIB, "nullb0: {dev:#}");
    assert!(
        u(dev, "/reads") > 0 && u(dev, "/writes") > 0,
        "nullb0: {dev:#}"
    );

    // oom: 64 MiB asked for under memory.max 16M without swap.
    let oom = container(snap, "/test.slice/oom");
    let ev = &oom["stats"]["memory"]["events"];
    assert_eq!(u(ev, "/oom_kill"), 1, "oom memory.events: {ev:#}");
    assert!(u(ev, "/oom") >= 1, "oom memory.events: {ev:#}");
    assert!(u(ev, "/max") >= 1, "oom memory.events: {ev:#}");
    let spec = &oom["stats"]["spec"];
    assert_eq!(
        u(spec, "/memory_limit_bytes"),
        16 * MIB,
        "oom spec: {spec:#}"
    );
    assert_eq!(u(spec, "/memory_swap_limit_bytes"), 0, "oom spec: {spec:#}");

    // Limits written to mem after the second sweep show at the third, a fifth of a second
    // later: the spec watch on the cgroup2 directory (the backstop is minutes away).
    let third = &out["third"];
    assert_eq!(third["write_errors"], serde_json::json!([]), "{third:#}");
    assert!(u(third, "/spec_interval_ms") >= 60_000, "{third:#}");
    let spec = &third["mem_spec"];
    assert_eq!(
        u(spec, "/memory_limit_bytes"),
        48 * MIB,
        "mem spec: {spec:#}"
    );
    assert_eq!(u(spec, "/pids_limit"), 77, "mem spec: {spec:#}");
    assert_eq!(u(spec, "/cpu_quota_us"), 30_000, "mem spec: {spec:#}");
}
