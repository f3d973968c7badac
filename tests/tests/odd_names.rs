//! A cgroup named with every kind of character the kernel takes in a name (quotes, a
//! backslash, braces, spaces, a comma, `=`, a tab, non-ASCII, an emoji; the kernel refuses
//! `/` and a newline) reads back exactly from every output: Prometheus text 0.0.4 (checked by
//! `promtool check metrics` too) and OpenMetrics, each parsed strictly; the JSON API,
//! including the processes route with the id percent-encoded; a real InfluxDB, through the
//! sink; and the OpenSearch-API server, through the Elasticsearch sink.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::osmem::Osmem;
use tests::servers::Influxd;
use tests::{output_text, run_tool, sleeper, urlencode, Exporter, TestCgroup, NO_RUNTIMES};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

/// Every character class a cgroup name may hold that an output format treats specially.
const ODD: &str = "ccol-odd \"dq\" 'sq' back\\slash {br}aces sp ace,comma=eq\ttab ünïcødé-容器 🦀";

/// The labels of one sample line of the text formats, values unescaped; an error for
/// anything the formats do not allow (an unknown escape, an unquoted value, a stray byte).
fn parse_labels(line: &str) -> Result<Vec<(String, String)>, String> {
    let open = line.find('{').ok_or("no labels")?;
    let mut chars = line[open + 1..].chars();
    let mut out = Vec::new();
    loop {
        let mut key = String::new();
        for c in chars.by_ref() {
            match c {
                '=' => break,
                c if c.is_ascii_alphanumeric() || c == '_' => key.push(c),
                '}' if key.is_empty() => return Ok(out),
                c => return Err(format!("{c:?} in a label name")),
            }
        }
        if chars.next() != Some('"') {
            return Err(format!("label {key} not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or("unterminated value")? {
                '"' => break,
                '\\' => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("escape \\{other:?}")),
                },
                '\n' => return Err("raw newline in a value".into()),
                c => value.push(c),
            }
        }
        out.push((key, value));
        match chars.next() {
            Some(',') => {}
            Some('}') => return Ok(out),
            other => return Err(format!("{other:?} after a label")),
        }
    }
}

/// The `id` label of every `family` sample, strictly parsed.
fn ids(body: &str, family: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .map(|l| {
            let labels = parse_labels(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            labels
                .into_iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no id: {l}"))
        })
        .collect()
}

#[test]
fn an_odd_name_reads_back_exactly_everywhere() {
    let mut cg = TestCgroup::new(ODD);
    let pid = cg.spawn(&mut sleeper());
    let db = Influxd::start();
    db.query("", "CREATE DATABASE odd");
    let os = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    std::fs::write(
        &cfg,
        format!(
            "housekeeping.interval = \"500ms\"\n\n\
             [[sinks]]\ntype = \"influxdb\"\nname = \"influx\"\nurl = \"{}\"\ndatabase = \"odd\"\ninterval = \"500ms\"\n\n\
             [[sinks]]\ntype = \"elasticsearch\"\nname = \"es\"\nurl = \"{}\"\nindex = \"odd\"\ninterval = \"500ms\"\n",
            db.url(),
            os.url()
        ),
    )
    .unwrap();
    let mut args = vec![
        "--config.file",
        cfg.to_str().unwrap(),
        "--cgroups.include",
        &cg.id,
    ];
    args.extend(NO_RUNTIMES);
    let exp = Exporter::start(BIN, &args);

    // Prometheus text 0.0.4: promtool takes it, and the id parses back exactly.
    let text = exp.get("/metrics").text();
    assert!(
        ids(&text, "container_memory_usage_bytes").contains(&cg.id),
        "{:?} not among {:?}",
        cg.id,
        ids(&text, "container_memory_usage_bytes")
    );
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = run_tool(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < '{}'", file.display())),
    );
    // promtool lints names too (exit 3 for lint only); a parse error is exit 1.
    let said = output_text(&out);
    assert!(
        out.status.code() != Some(1) && !said.contains("error while linting"),
        "promtool: {said}"
    );
    // OpenMetrics.
    let om = exp
        .get_with(
            "/metrics",
            &[("Accept", "application/openmetrics-text; version=1.0.0")],
        )
        .text();
    assert!(om.trim_end().ends_with("# EOF"), "not OpenMetrics");
    assert!(ids(&om, "container_memory_usage_bytes").contains(&cg.id));

    // The JSON API, and the processes route with the id percent-encoded.
    let list: serde_json::Value =
        serde_json::from_slice(&exp.get("/api/v1/containers").body).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"].as_str() == Some(cg.id.as_str())),
        "{list}"
    );
    let r = exp.get(&format!(
        "/api/v1/containers/{}/processes",
        urlencode(&cg.id)
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let procs: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(procs["id"].as_str(), Some(cg.id.as_str()), "{procs}");
    assert!(
        procs["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == pid),
        "{procs}"
    );

    // InfluxDB: the point lands and the id tag reads back, a backslash written as `/`
    // (influx/line.rs: no InfluxDB version reads a backslash in a tag the same way).
    let want = cg.id.replace('\\', "/");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = db.query(
            "odd",
            "SHOW TAG VALUES FROM container_cpu WITH KEY = \"id\"",
        );
        let got: Vec<String> = v["results"][0]["series"][0]["values"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r[1].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if got.contains(&want) {
            println!("influx id tags: {got:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{want:?} not among {got:?}; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Elasticsearch: a document whose container.id is the name, found by an exact term.
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = || {
        let q = json!({ "query": { "term": { "container.id": cg.id } } });
        let r = os.request("POST", "/odd/_count", Some(&q));
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default()["count"]
            .as_u64()
            .unwrap_or(0)
    };
    while count() == 0 {
        assert!(
            Instant::now() < deadline,
            "no document; log:\n{}",
            exp.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let hit = os.json(
        "POST",
        "/odd/_search",
        Some(&json!({ "size": 1, "query": { "term": { "container.id": cg.id } } })),
    );
    assert_eq!(
        hit["hits"]["hits"][0]["_source"]["container"]["id"].as_str(),
        Some(cg.id.as_str()),
        "{hit}"
    );
    let log = exp.log.lock().unwrap().clone();
    assert!(!log.contains("ERROR"), "{log}");
}
