//! The exporter pushing to the OpenSearch-API server from its config file (dated indices):
//! `_count` and a max aggregation return the test cgroup's figures, matching /metrics.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::osmem::Osmem;
use tests::{samples, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

#[test]
fn pushed_documents_match_metrics() {
    let mut cg = TestCgroup::new("ccol-expes");
    cg.set(
        "memory",
        "memory.limit_in_bytes",
        &(128u64 << 20).to_string(),
    );
    let mut hold = std::process::Command::new(env!("CARGO_BIN_EXE_hold_memory"));
    hold.arg("10");
    cg.spawn(&mut hold);
    std::thread::sleep(Duration::from_millis(300));
    let os = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    std::fs::write(
        &cfg,
        format!(
            "housekeeping.interval = \"500ms\"\n\n[[sinks]]\ntype = \"elasticsearch\"\nname = \"es\"\nurl = \"{}\"\nindex = \"container-metrics-%Y.%m.%d\"\ninterval = \"500ms\"\nhost = \"testhost\"\n",
            os.url()
        ),
    )
    .unwrap();
    let exp = Exporter::start(
        BIN,
        &[
            "--config.file",
            cfg.to_str().unwrap(),
            "--cgroups.include",
            &cg.id,
        ],
    );
    let q = json!({ "term": { "container.id": cg.id } });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while n < 3 {
        assert!(
            Instant::now() < deadline,
            "only {n} documents; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
        let r = os.request(
            "POST",
            "/container-metrics-*/_count",
            Some(&json!({ "query": q })),
        );
        if r.status == 200 {
            n = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["count"]
                .as_u64()
                .unwrap_or(0);
        }
    }
    let body = exp.get("/metrics").text();
    let metric = |name: &str| {
        samples(&body, name)
            .into_iter()
            .find(|(l, _)| l.contains(&format!("id=\"{}\"", cg.id)))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let r = os.json(
        "POST",
        "/container-metrics-*/_search",
        Some(&json!({
            "size": 0,
            "query": q,
            "aggs": {
                "limit": { "max": { "field": "collector.spec.memory_limit_bytes" } },
                "mem": { "max": { "field": "collector.memory.usage_bytes" } },
                "cpu": { "max": { "field": "collector.cpu.usage_ns" } },
            },
        })),
    );
    let agg = |k: &str| {
        r["aggregations"][k]["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("{r}"))
    };
    assert_eq!(agg("limit"), metric("container_spec_memory_limit_bytes"));
    // The holder sleeps: its CPU time and memory are steady between the push and the scrape.
    assert!(
        (agg("cpu") / 1e9 - metric("container_cpu_usage_seconds_total")).abs() < 1e-3,
        "{r}"
    );
    let (a, b) = (agg("mem"), metric("container_memory_usage_bytes"));
    assert!(
        (a - b).abs() <= 64.0 * 1024.0,
        "documents {a} vs /metrics {b}"
    );
    assert!(a >= (10u64 << 20) as f64);
    // The machine's own document rides along with each push.
    let m = os.json(
        "POST",
        "/container-metrics-*/_search",
        Some(&json!({ "size": 1, "query": { "term": { "event.dataset": "machine.metrics" } } })),
    );
    let hit = &m["hits"]["hits"][0]["_source"];
    assert_eq!(hit["host"]["name"], "testhost", "{m}");
    assert_eq!(
        hit["collector"]["machine"]["memory_bytes"].as_f64(),
        Some(metric_any(&body, "machine_memory_bytes")),
        "{m}"
    );
    let sent = samples(&body, "collector_sink_sent_total");
    assert!(
        sent.iter()
            .any(|(l, v)| l.contains("type=\"elasticsearch\"") && *v >= 3.0),
        "{sent:?}"
    );
}

fn metric_any(body: &str, name: &str) -> f64 {
    samples(body, name)
        .first()
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} missing"))
}
