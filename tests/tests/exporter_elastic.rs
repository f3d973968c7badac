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
    // v1's usage is charged in per-CPU batches of 64 pages (256 KiB), which drain at their
    // own pace: a sleeping process's usage moves by up to that much a CPU.
    let (a, b) = (agg("mem"), metric("container_memory_usage_bytes"));
    assert!(
        (a - b).abs() <= 2.0 * 256.0 * 1024.0 + 64.0 * 1024.0,
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

/// Two processes named like miners in one container, found by one walk: two alerts (the
/// same kind, container and time, told apart by their process), each with its process in ECS
/// terms, `process.pid` mapped as a number.
#[test]
fn miner_findings_are_alert_documents() {
    let bin = tempfile::tempdir().unwrap();
    let mut cg = TestCgroup::new("ccol-expes-sec");
    let mut pids = Vec::new();
    for name in ["xmrig", "minerd"] {
        let exe = bin.path().join(name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        pids.push((
            name,
            cg.spawn(std::process::Command::new(&exe).arg("600")),
            exe,
        ));
    }
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
    let alerts = json!({ "bool": { "filter": [
        { "term": { "container.id": cg.id } },
        { "term": { "event.kind": "alert" } },
        { "term": { "rule.name": "miner_process" } },
    ] } });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = os.request(
            "POST",
            "/container-metrics-*/_count",
            Some(&json!({ "query": alerts })),
        );
        let n = (r.status == 200)
            .then(|| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .flatten()
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} alert documents; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = os.json(
        "POST",
        "/container-metrics-*/_search",
        Some(&json!({ "size": 10, "query": alerts })),
    );
    let hits = r["hits"]["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 2, "{r}");
    for (name, pid, exe) in &pids {
        let doc = hits
            .iter()
            .map(|h| &h["_source"])
            .find(|d| d["process"]["name"] == *name)
            .unwrap_or_else(|| panic!("no alert for {name}: {r}"));
        assert_eq!(doc["event"]["kind"], "alert", "{doc}");
        assert_eq!(doc["event"]["category"], "process", "{doc}");
        assert_eq!(doc["event"]["action"], "miner_process", "{doc}");
        assert_eq!(doc["event"]["dataset"], "container.events", "{doc}");
        assert_eq!(doc["rule"]["name"], "miner_process", "{doc}");
        assert_eq!(
            doc["process"]["pid"].as_u64(),
            Some(u64::from(*pid)),
            "{doc}"
        );
        let executable = doc["process"]["executable"].as_str().unwrap_or("");
        assert!(executable.ends_with(&format!("/{name}")), "{doc}");
        assert_eq!(executable, exe.to_str().unwrap(), "{doc}");
        assert_eq!(
            doc["process"]["command_line"],
            format!("{} 600", exe.display()).as_str(),
            "{doc}"
        );
        assert_eq!(doc["host"]["name"], "testhost", "{doc}");
        assert_eq!(doc["container"]["id"], cg.id.as_str(), "{doc}");
    }
    // Typed by the template: a range over process.pid finds the xmrig alert and only it,
    // and the index maps it as a long.
    let xmrig_pid = pids[0].1;
    let by_pid = json!({ "bool": { "filter": [
        alerts,
        { "range": { "process.pid": { "gte": xmrig_pid, "lte": xmrig_pid } } },
    ] } });
    let r = os.json(
        "POST",
        "/container-metrics-*/_search",
        Some(&json!({ "size": 10, "query": by_pid })),
    );
    let hits = r["hits"]["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 1, "{r}");
    assert!(
        hits[0]["_source"]["process"]["executable"]
            .as_str()
            .is_some_and(|e| e.ends_with("/xmrig")),
        "{r}"
    );
    let index = hits[0]["_index"].as_str().expect("the index").to_string();
    let m = os.json("GET", &format!("/{index}/_mapping"), None);
    let p = &m[&index]["mappings"]["properties"]["process"]["properties"];
    assert_eq!(p["pid"]["type"], "long", "{m}");
    assert_eq!(p["parent"]["properties"]["pid"]["type"], "long", "{m}");
    assert_eq!(p["executable"]["type"], "keyword", "{m}");
    let rule = &m[&index]["mappings"]["properties"]["rule"]["properties"];
    assert_eq!(rule["name"]["type"], "keyword", "{m}");
}
