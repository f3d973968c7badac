//! The Grafana dashboards of deploy/grafana/dashboards: what deploy/grafana/generate.py writes,
//! byte for byte; well-formed current-schema JSON on a
//! templated datasource, naming only documented series, labels and InfluxDB fields; and every
//! query of the Prometheus dashboards run through a real Prometheus scraping the real exporter
//! over a test cgroup with work in it, each required to return data unless listed below as
//! conditional, with its condition.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::grafana::{self, datasource_var, disk_of, is_influx, panels, queries, Query};
use tests::servers::Prometheus;
use tests::{http_get, Exporter, NetnsPair, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dashboards() -> Vec<(String, Value)> {
    let out = grafana::dashboards();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "collector.json",
            "containers.json",
            "influxdb-containers.json",
            "node.json",
            "security.json"
        ]
    );
    out
}

/// The committed JSON is generate.py's output: a query changed in one and not the other
/// fails here.
#[test]
fn the_committed_dashboards_are_what_generate_py_writes() {
    let out = tempfile::tempdir().expect("a temp dir");
    let script = root().join("deploy/grafana/generate.py");
    let run = tests::run_tool(
        std::process::Command::new("python3")
            .arg(&script)
            .arg(out.path()),
    );
    assert!(run.status.success(), "{}: {run:?}", script.display());
    for (name, _) in dashboards() {
        let committed = root().join("deploy/grafana/dashboards").join(&name);
        let fresh = std::fs::read_to_string(out.path().join(&name))
            .unwrap_or_else(|e| panic!("generate.py wrote no {name}: {e}"));
        assert!(
            std::fs::read_to_string(&committed).unwrap() == fresh,
            "{} differs from what generate.py writes; run `python3 deploy/grafana/generate.py`",
            committed.display()
        );
    }
}

#[test]
fn dashboards_are_current_schema_on_the_templated_datasource() {
    for (file, d) in dashboards() {
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{file}: schemaVersion {}",
            d["schemaVersion"]
        );
        assert!(d.get("__inputs").is_none(), "{file}: __inputs");
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{file}");
        let kind = if file.starts_with("influxdb") {
            "influxdb"
        } else {
            "prometheus"
        };
        let ds = datasource_var(&d);
        assert_eq!(ds["name"], "datasource", "{file}");
        assert_eq!(ds["query"], kind, "{file}");
        let templated = |v: &Value, place: &str| {
            assert_eq!(v["uid"], "${datasource}", "{file}: {place}: datasource {v}");
            assert_eq!(v["type"], kind, "{file}: {place}: datasource {v}");
        };
        assert!(panels(&d).len() >= 5, "{file}: too few panels");
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or_default();
            templated(&p["datasource"], title);
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {title}: no targets");
            for t in targets {
                templated(&t["datasource"], title);
            }
        }
        for a in d["annotations"]["list"].as_array().unwrap() {
            if a["builtIn"] != 1 {
                templated(&a["datasource"], "annotation");
                templated(&a["target"]["datasource"], "annotation target");
            }
        }
        let vars = d["templating"]["list"].as_array().unwrap();
        for v in vars.iter().filter(|v| v["type"] == "query") {
            templated(&v["datasource"], "variable");
        }
        let names: BTreeSet<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        let want: &[&str] = match file.as_str() {
            "node.json" | "collector.json" => &["datasource", "instance"],
            "influxdb-containers.json" => &["datasource", "host", "namespace", "pod", "name"],
            _ => &[
                "datasource",
                "instance",
                "namespace",
                "pod",
                "container",
                "name",
            ],
        };
        assert_eq!(names, want.iter().copied().collect(), "{file}: variables");
        // No datasource uid other than the variable (and Grafana's built-in annotations).
        let text = d.to_string();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\"uid\":\"") {
            rest = &rest[i + 7..];
            let uid = &rest[..rest.find('"').unwrap()];
            assert!(
                ["${datasource}", "-- Grafana --"].contains(&uid) || uid.starts_with("ccol-"),
                "{file}: hard-coded uid {uid:?}"
            );
        }
    }
}

/// `a_{x,y}_b` -> `a_x_b`, `a_y_b` (every group, recursively).
fn expand(s: &str) -> Vec<String> {
    let Some(open) = s.find('{') else {
        return vec![s.to_string()];
    };
    let close = open + s[open..].find('}').expect("a closing brace");
    let mut out = Vec::new();
    for alt in s[open + 1..close].split(',') {
        out.extend(expand(&format!("{}{}{}", &s[..open], alt, &s[close + 1..])));
    }
    out
}

/// Backticked spans of a text.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Series names METRICS.md documents: backticked names, brace groups inside a name expanded,
/// a trailing brace group (labels) dropped.
fn documented_series() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    let mut out = BTreeSet::new();
    for tok in backticked(&text) {
        let tok = match tok.rfind('{') {
            Some(i) if tok.ends_with('}') => &tok[..i],
            _ => tok,
        };
        for name in expand(tok) {
            let ok = ["container_", "machine_", "collector_", "process_"]
                .iter()
                .any(|p| name.starts_with(p))
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if ok {
                out.insert(name);
            }
        }
    }
    // The policy file's gauge is documented with the policy file, in README.md.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("container_policy_violation"));
    out.insert("container_policy_violation".into());
    // Served with the runtime providers; checked live below.
    out
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
];

const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// Metric names and matcher labels of a PromQL expression.
fn promql_names(q: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let b = q.as_bytes();
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let mut i = 0;
    let word = |i: usize| {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    let next_non_space = |mut j: usize| {
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1 + q[i + 1..].find('"').expect("closed string") + 1;
        } else if c == b'[' {
            i += q[i..].find(']').expect("closed range") + 1;
        } else if c == b'{' {
            let end = i + q[i..].find('}').expect("closed matchers");
            let inner = &q[i + 1..end];
            let mut k = 0;
            while k < inner.len() {
                if inner.as_bytes()[k] == b'"' {
                    k += 1 + inner[k + 1..].find('"').unwrap() + 1;
                    continue;
                }
                if inner.as_bytes()[k].is_ascii_alphabetic() {
                    let e = k + inner[k..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                        .unwrap_or(inner.len() - k);
                    labels.insert(inner[k..e].to_string());
                    k = e;
                    continue;
                }
                k += 1;
            }
            i = end + 1;
        } else if c == b'$' {
            i = word(i + 1);
        } else if c.is_ascii_digit() {
            i = word(i);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let j = word(i);
            let w = &q[i..j];
            let n = next_non_space(j);
            if KEYWORDS.contains(&w) {
                // by (...), on (...): label lists, not names.
                if n < b.len() && b[n] == b'(' && !matches!(w, "and" | "or" | "unless") {
                    let close = n + q[n..].find(')').unwrap();
                    for l in q[n + 1..close].split(',') {
                        if !l.trim().is_empty() {
                            labels.insert(l.trim().to_string());
                        }
                    }
                    i = close + 1;
                } else {
                    i = j;
                }
            } else if (n < b.len() && b[n] == b'(') || AGGREGATIONS.contains(&w) {
                i = j; // a function, or an aggregation before its `by (...)`
            } else {
                names.insert(w.to_string());
                i = j;
            }
        } else {
            i += 1;
        }
    }
    (names, labels)
}

/// Labels the exporter's series carry (METRICS.md, the self-metrics) and Prometheus adds.
fn documented_labels() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    let known = [
        "id",
        "name",
        "image",
        "namespace",
        "pod",
        "container",
        "cpu",
        "state",
        "failure_type",
        "interface",
        "device",
        "tcp_state",
        "udp_state",
        "ulimit",
        "kind",
        "mode",
        "mountpoint",
        "fstype",
        "event",
        "runtime",
        "source",
        "sink",
        "type",
    ];
    for l in known {
        assert!(
            text.contains(&format!("`{l}`")) || text.contains(&format!("{{{l}}}")),
            "METRICS.md does not document the label {l}"
        );
    }
    known
        .iter()
        .chain(&["instance", "job", "reason"])
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn promql_names_only_documented_series_and_labels() {
    let series = documented_series();
    let labels = documented_labels();
    let mut used = BTreeSet::new();
    for (file, d) in dashboards() {
        if is_influx(&d) {
            continue;
        }
        for q in queries(&d) {
            let (names, ls) = promql_names(&q.text);
            assert!(
                !names.is_empty(),
                "{file}: {}: no series in {}",
                q.place,
                q.text
            );
            for n in names {
                assert!(
                    series.contains(&n),
                    "{file}: {}: {n} is not a documented series ({})",
                    q.place,
                    q.text
                );
                used.insert(n);
            }
            for l in ls.iter().chain(q.label.iter()) {
                assert!(labels.contains(l), "{file}: {}: label {l}", q.place);
            }
        }
    }
    // The tokenizer finds what the dashboards are about.
    for n in [
        "container_cpu_usage_seconds_total",
        "container_spec_cpu_quota",
        "container_security_findings_total",
        "container_events_total",
        "machine_filesystem_avail_bytes",
        "collector_sink_dropped_total",
    ] {
        assert!(used.contains(n), "{n} not among {used:?}");
    }
    assert_eq!(
        promql_names(
            r#"sum by (id) (rate(a_b{x=~"$y", z!="/"}[1d])) / on (id) max without (x) (c) offset 5m"#
        ),
        (
            ["a_b", "c"].map(String::from).into(),
            ["id", "x", "z"].map(String::from).into()
        )
    );
}

/// The InfluxDB schema table of METRICS.md: measurement -> (tags, fields).
fn influx_schema() -> Vec<(String, BTreeSet<String>, BTreeSet<String>)> {
    let text = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    let start = text
        .find("## InfluxDB schema")
        .expect("an InfluxDB schema section");
    let section = &text[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let common_line = section
        .lines()
        .find(|l| l.starts_with("Tags on every container measurement"))
        .expect("the common tags");
    let mut common: BTreeSet<String> = backticked(common_line)
        .into_iter()
        .map(String::from)
        .collect();
    common.extend(
        section
            .lines()
            .skip_while(|l| !l.starts_with("Tags on every"))
            .nth(1)
            .map(|l| {
                backticked(l)
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        assert!(cells.len() >= 4, "{line}");
        let m = backticked(cells[1])[0].to_string();
        let mut tags = common.clone();
        tags.extend(backticked(cells[2]).into_iter().map(String::from));
        let fields = backticked(cells[3..].join("|").as_str())
            .into_iter()
            .flat_map(expand)
            .collect();
        out.push((m, tags, fields));
    }
    out
}

/// Double-quoted identifiers of an InfluxQL fragment.
fn quoted(s: &str) -> Vec<&str> {
    s.split('"').skip(1).step_by(2).collect()
}

#[test]
fn the_influxdb_dashboard_names_the_sinks_measurements_fields_and_tags() {
    let schema = influx_schema();
    let find = |m: &str| {
        schema
            .iter()
            .find(|(n, _, _)| n == m)
            .unwrap_or_else(|| panic!("measurement {m} is not in METRICS.md's InfluxDB schema"))
    };
    assert!(find("container_cpu").2.contains("usage_seconds"));
    assert!(find("container_pressure").2.contains("io_some_avg10"));
    assert!(find("container_network").1.contains("interface"));
    assert!(find("container_cpu").1.contains("namespace"));
    let (_, d) = dashboards()
        .into_iter()
        .find(|(f, _)| f == "influxdb-containers.json")
        .unwrap();
    let mut measurements = BTreeSet::new();
    for q in queries(&d) {
        let t = &q.text;
        let from = t
            .find(" FROM ")
            .unwrap_or_else(|| panic!("{}: {t}", q.place));
        let after = &t[from + 6..];
        let m = quoted(after)[0];
        let (_, tags, fields) = find(m);
        measurements.insert(m.to_string());
        if let Some(key) = t.strip_prefix("SHOW TAG VALUES FROM ") {
            let k = quoted(&key[key.find("WITH KEY").unwrap()..])[0];
            assert!(tags.contains(k), "{}: {m} has no tag {k}", q.place);
            continue;
        }
        let select = t.strip_prefix("SELECT ").expect("a SELECT");
        for f in quoted(&select[..from - 7]) {
            assert!(fields.contains(f), "{}: {m} has no field {f}", q.place);
        }
        let rest = &after[after[1..].find('"').unwrap() + 2..];
        for tag in quoted(rest) {
            assert!(tags.contains(tag), "{}: {m} has no tag {tag}", q.place);
        }
        assert!(t.contains("$timeFilter"), "{}: {t}", q.place);
    }
    for m in [
        "container_cpu",
        "container_memory",
        "container_network",
        "container_blkio",
        "container_pressure",
        "container_tasks",
        "container_security_findings",
        "container_events",
    ] {
        assert!(measurements.contains(m), "{m} not charted");
    }
}

// ---- End to end: a real Prometheus scraping the real exporter ----

/// A range query from `start` to now, 1 s steps, as Grafana runs a panel: the result, or the
/// error Prometheus gave.
fn query_range(prom: &Prometheus, q: &str, start: f64) -> Result<Vec<Value>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={now:.3}&step=1",
        tests::urlencode(q)
    );
    let r = http_get(prom.addr, &path, &[]);
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if r.status != 200 || v["status"] != "success" {
        return Err(format!("{} {}", r.status, r.text()));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Grafana's substitutions, as the test runs them: every variable `.*` (the dashboards' All),
/// the interval macros fixed.
fn substitute(q: &str) -> String {
    let q = q
        .replace("$__rate_interval", "10s")
        .replace("$__interval", "5s")
        .replace("$__range", "5m");
    let mut out = String::new();
    let mut rest = q.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let name_end = rest[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| i + 1 + e);
        out.push_str(".*");
        rest = &rest[name_end..];
    }
    out.push_str(rest);
    out
}

/// Queries that may rightly return nothing here, and why: matched by a part of their text.
const CONDITIONAL: &[(&str, &str)] = &[
    (
        "id=\"/\"",
        "the machine's own cgroup followed, which --cgroups.include (keeping the test to its \
         cgroup) leaves out",
    ),
    (
        "event=\"oom_kill\"",
        "an OOM kill has happened (none is provoked here)",
    ),
    (
        "event=\"policy_violation\"",
        "a policy file and a runtime-named container outside it",
    ),
    (
        "container_policy_violation",
        "a policy file and a runtime-named container outside it",
    ),
    (
        "image!=\"\"",
        "a container runtime naming containers with an image (the test's cgroup is raw)",
    ),
    (
        "collector_sink_last_success_timestamp_seconds",
        "a sink that has delivered once (the test's InfluxDB sink has no server)",
    ),
];

/// Variable queries that may rightly return nothing: labels a runtime or Kubernetes sets.
const CONDITIONAL_LABELS: &[(&str, &str)] = &[
    ("namespace", "Kubernetes metadata from a container runtime"),
    ("pod", "Kubernetes metadata from a container runtime"),
    ("container", "Kubernetes metadata from a container runtime"),
    ("name", "a container runtime naming the container"),
];

fn condition(q: &Query) -> Option<&'static str> {
    if let Some(l) = &q.label {
        return CONDITIONAL_LABELS
            .iter()
            .find(|(n, _)| n == l)
            .map(|(_, why)| *why);
    }
    CONDITIONAL
        .iter()
        .find(|(part, _)| q.text.contains(part))
        .map(|(_, why)| *why)
}

#[test]
fn every_prometheus_dashboard_query_returns_data_from_a_real_scrape() {
    tests::require_root();
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-dash");
    // Half a CPU of quota (throttled by the burner), a memory limit, and on v1 a blkio rule
    // on the disk the IO loop uses (v1 counts IO only on devices with a rule).
    assert!(
        cg.set_where_present("cpu.cfs_quota_us", "50000")
            || cg.set_where_present("cpu.max", "50000 100000"),
        "no CPU quota file"
    );
    let _ = cg.set_where_present("cpu.cfs_period_us", "100000");
    assert!(
        cg.set_where_present("memory.limit_in_bytes", "268435456")
            || cg.set_where_present("memory.max", "268435456"),
        "no memory limit file"
    );
    let work = tempfile::tempdir_in("/var/tmp").expect("a temp dir on disk");
    if let Some(disk) = disk_of(work.path()) {
        let _ = cg.set_where_present(
            "blkio.throttle.read_bps_device",
            &format!("{disk} 10000000000"),
        );
        let _ = cg.set_where_present(
            "blkio.throttle.write_bps_device",
            &format!("{disk} 10000000000"),
        );
    }
    grafana::dashboard_workload(&mut cg, &pair, work.path());
    let ready = work.path().join("ready");
    cg.spawn(&mut NetnsPair::exec(
        &pair.a,
        env!("CARGO_BIN_EXE_hold_fds"),
        &[ready.to_str().unwrap(), "1024", "0", "1", "0", "0"],
    ));
    // A process named like a miner: a miner_process finding and its event.
    let xmrig = work.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).unwrap();
    cg.spawn(&mut NetnsPair::exec(
        &pair.a,
        xmrig.to_str().unwrap(),
        &["600"],
    ));

    // An InfluxDB sink with no server behind it: the sink series are served.
    let cfg = work.path().join("exporter.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[sinks]]\ntype = \"influxdb\"\nurl = \"http://127.0.0.1:{}\"\ndatabase = \"containers\"\ninterval = \"1s\"\n",
            tests::servers::free_port()
        ),
    )
    .unwrap();
    let exp = Exporter::start(
        BIN,
        &[
            "--config.file",
            cfg.to_str().unwrap(),
            "--housekeeping.interval",
            "1s",
            "--containers.process-interval",
            "1s",
            "--containers.socket-states",
            "--cgroups.include",
            &cg.id,
        ],
    );
    let prom = Prometheus::start(exp.addr);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 5.0;

    // A child cgroup that starts and stops: started and stopped events.
    std::thread::sleep(Duration::from_secs(4));
    let children: Vec<PathBuf> = cg.dirs().iter().map(|d| d.join("late")).collect();
    for c in &children {
        std::fs::create_dir(c).unwrap();
    }
    std::thread::sleep(Duration::from_secs(4));
    for c in children.iter().rev() {
        std::fs::remove_dir(c).unwrap();
    }

    let mut all = Vec::new();
    for (file, d) in dashboards() {
        if !is_influx(&d) {
            all.extend(queries(&d).into_iter().map(|q| (file.clone(), q)));
        }
    }
    let run = |q: &Query| -> Result<bool, String> {
        let text = substitute(&q.text);
        match &q.label {
            // label_values(sel, label): some series of sel has the label.
            Some(l) => {
                let res = query_range(&prom, &format!("count by ({l}) ({text})"), start)?;
                Ok(res
                    .iter()
                    .any(|r| r["metric"][l].as_str().is_some_and(|v| !v.is_empty())))
            }
            None => Ok(!query_range(&prom, &text, start)?.is_empty()),
        }
    };
    // Wait for rates over full windows and for the findings, events and socket tables.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut empty;
    loop {
        empty = Vec::new();
        for (file, q) in &all {
            match run(q) {
                Err(e) => panic!("{file}: {}: {} rejected: {e}", q.place, q.text),
                Ok(true) => {}
                Ok(false) if condition(q).is_some() => {}
                Ok(false) => empty.push(format!("{file}: {}: {}", q.place, q.text)),
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(
        empty.is_empty(),
        "{} queries returned no data:\n{}",
        empty.len(),
        empty.join("\n")
    );
    // Every conditional entry matches some query (the list stays current), and says why.
    for (part, why) in CONDITIONAL {
        assert!(
            all.iter().any(|(_, q)| q.text.contains(part)),
            "{part} ({why}) matches no query"
        );
    }
    for (file, q) in &all {
        if let Some(why) = condition(q) {
            eprintln!("conditional ({why}): {file}: {}", q.place);
        }
    }
}
