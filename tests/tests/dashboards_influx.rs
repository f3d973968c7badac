//! The InfluxDB dashboard (deploy/grafana/dashboards/influxdb-containers.json) run for real:
//! every panel target and template variable query, with Grafana's macros and variables
//! substituted as Grafana would, sent to a real InfluxDB 1.x fed by the real exporter's
//! InfluxDB sink over a test cgroup with work in it; each must return a non-null value unless
//! listed below as conditional, with its condition. (dashboards.rs checks the same queries
//! against METRICS.md's schema, without running them.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::grafana::{self, disk_of, queries, variables, Query};
use tests::servers::Influxd;
use tests::{Exporter, NetnsPair, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");
const DB: &str = "ccol";

/// What Grafana sends for a query over the last 10 minutes with every variable at All
/// (`.*`, the dashboard's allValue, which Grafana puts in unescaped): `$timeFilter` and
/// `$__interval` as Grafana expands them. Any other `$name` is a macro this test does not
/// know: an error, so a new one is not sent as is.
fn substitute(q: &str, vars: &[&str]) -> Result<String, String> {
    let q = q
        .replace("$timeFilter", "time >= now() - 10m")
        .replace("$__interval", "2s");
    let mut out = String::new();
    let mut rest = q.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let end = rest[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| i + 1 + e);
        let name = &rest[i + 1..end];
        // A `$` before no name is the regexes' end anchor, which Grafana leaves alone.
        if name.is_empty() {
            out.push('$');
            rest = &rest[end..];
            continue;
        }
        if !vars.contains(&name) {
            return Err(format!("unknown macro or variable ${name}"));
        }
        out.push_str(".*");
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether InfluxDB's answer has a series with a non-null value (a time series' values, or a
/// SHOW TAG VALUES' `value`); InfluxQL errors are errors.
fn has_data(answer: &Value) -> Result<bool, String> {
    if answer.is_null() {
        return Err("not a JSON answer".into());
    }
    if let Some(e) = answer["error"].as_str() {
        return Err(e.to_string());
    }
    let results = answer["results"].as_array().ok_or("no results")?;
    let mut any = false;
    for r in results {
        if let Some(e) = r["error"].as_str() {
            return Err(e.to_string());
        }
        for s in r["series"].as_array().into_iter().flatten() {
            let cols: Vec<&str> = s["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default())
                .collect();
            for row in s["values"].as_array().into_iter().flatten() {
                let Some(row) = row.as_array() else { continue };
                any |= row
                    .iter()
                    .zip(&cols)
                    .filter(|(_, c)| !matches!(**c, "time" | "key"))
                    .any(|(v, _)| !v.is_null() && v != "");
            }
        }
    }
    Ok(any)
}

/// Queries that may rightly return nothing here, and why: matched by a part of their text.
const CONDITIONAL: &[(&str, &str)] = &[
    (
        "WITH KEY = \"namespace\"",
        "Kubernetes metadata from a container runtime (the test's cgroups are raw)",
    ),
    (
        "WITH KEY = \"pod\"",
        "Kubernetes metadata from a container runtime (the test's cgroups are raw)",
    ),
    (
        "WITH KEY = \"name\"",
        "a container runtime naming the container (the test's cgroups are raw)",
    ),
];

/// Series a query must show besides having data, as the workload makes them: (part of its
/// text, tag, value). The Events panel would have data from the finding alone.
const EXPECTED_SERIES: &[(&str, &str, &str)] = &[
    ("FROM \"container_events\"", "event", "started"),
    ("FROM \"container_events\"", "event", "miner_process"),
];

/// The expected series missing from an answer to `q`.
fn missing_series(q: &str, answer: &Value) -> Vec<String> {
    let series: Vec<&Value> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["series"].as_array().into_iter().flatten())
        .collect();
    EXPECTED_SERIES
        .iter()
        .filter(|(part, _, _)| q.contains(part))
        .filter(|(_, tag, value)| {
            !series.iter().any(|s| {
                s["tags"][*tag] == *value
                    && s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|row| row[1].as_f64().is_some())
            })
        })
        .map(|(_, tag, value)| format!("{tag}={value}"))
        .collect()
}

struct ChildDirs(Vec<PathBuf>);

impl Drop for ChildDirs {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The last lines of the exporter's log, for failure messages.
fn log_tail(exp: &Exporter) -> String {
    let log = exp.log.lock().map(|l| l.clone()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(800) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// Series count and largest number of an answer, for the log.
fn summary(answer: &Value) -> String {
    let series: Vec<&Value> = answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let max = series
        .iter()
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .filter_map(|row| row.as_array()?.get(1)?.as_f64())
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let tags: Vec<String> = series.iter().map(|s| s["tags"].to_string()).collect();
    format!("{} series, max {max:?} {}", series.len(), tags.join(" "))
}

#[test]
fn every_influxdb_dashboard_query_returns_data_from_the_real_sink() {
    tests::require_root();
    let started = Instant::now();
    let d = grafana::dashboard("influxdb-containers.json");
    let vars: Vec<&str> = variables(&d)
        .iter()
        .map(|v| v["name"].as_str().expect("a variable name"))
        .collect();
    let all = queries(&d);
    let sent: Vec<String> = all
        .iter()
        .map(|q| {
            substitute(&q.text, &vars).unwrap_or_else(|e| panic!("{}: {e}: {}", q.place, q.text))
        })
        .collect();

    let db = Influxd::start();
    let created = db.query("", &format!("CREATE DATABASE {DB}"));
    assert!(
        has_data(&created).is_ok(),
        "CREATE DATABASE {DB}: {}",
        short(&created)
    );

    // Declared before the cgroup, so removed after its processes are killed.
    let work = tempfile::tempdir_in("/var/tmp").expect("a temp dir on disk");
    let pair = NetnsPair::create();
    let mut cg = TestCgroup::new("ccol-dashinflux");
    // Half a CPU of quota (throttled by the burner), a memory limit, and on v1 a blkio rule
    // on the disk the IO loop uses (v1 counts IO only on devices with a rule).
    assert!(
        cg.set_where_present("cpu.cfs_quota_us", "50000")
            || cg.set_where_present("cpu.max", "50000 100000"),
        "no CPU quota file in {:?}",
        cg.dirs()
    );
    let _ = cg.set_where_present("cpu.cfs_period_us", "100000");
    assert!(
        cg.set_where_present("memory.limit_in_bytes", "268435456")
            || cg.set_where_present("memory.max", "268435456"),
        "no memory limit file in {:?}",
        cg.dirs()
    );
    let blkio_rule = disk_of(work.path()).is_some_and(|disk| {
        cg.set_where_present(
            "blkio.throttle.read_bps_device",
            &format!("{disk} 10000000000"),
        ) && cg.set_where_present(
            "blkio.throttle.write_bps_device",
            &format!("{disk} 10000000000"),
        )
    });
    // Conditions this machine decides: no disk to put a rule on, no PSI for the cgroup.
    let mut conditional: Vec<(String, &str)> = CONDITIONAL
        .iter()
        .map(|(part, why)| (part.to_string(), *why))
        .collect();
    if !blkio_rule {
        conditional.push((
            "\"container_blkio\"".into(),
            "a v1 blkio throttle rule on the disk behind /var/tmp (v1 counts IO only on \
             devices with a rule; none could be set here)",
        ));
    }
    for r in ["cpu", "memory", "io"] {
        if !cg
            .dirs()
            .iter()
            .any(|d| d.join(format!("{r}.pressure")).exists())
        {
            conditional.push((
                format!("\"{r}_some_avg10\""),
                "PSI files in the cgroup's cgroup2 directory (none here)",
            ));
        }
    }
    let condition = |q: &Query| {
        conditional
            .iter()
            .find(|(part, _)| q.text.contains(part.as_str()))
            .map(|(_, why)| *why)
    };

    grafana::dashboard_workload(&mut cg, &pair, work.path());
    // A process named like a miner: a miner_process finding and its event.
    let xmrig = work.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).expect("copy /bin/sleep to xmrig");
    let xmrig = xmrig.to_str().expect("a UTF-8 temp path");
    cg.spawn(&mut NetnsPair::exec(&pair.a, xmrig, &["600"]));

    let cfg = work.path().join("exporter.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[sinks]]\ntype = \"influxdb\"\nname = \"dash\"\nurl = \"{}\"\ndatabase = \"{DB}\"\n\
             interval = \"1s\"\ntimeout = \"2s\"\nhost = \"dashhost\"\n",
            db.url()
        ),
    )
    .expect("write the exporter config");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "--web.listen-address",
        "127.0.0.1:0",
        "--config.file",
        cfg.to_str().expect("a UTF-8 temp path"),
        "--housekeeping.interval",
        "1s",
        "--containers.process-interval",
        "1s",
        "--cgroups.include",
        &cg.id,
    ])
    // Its log goes into failure messages: plain text.
    .env("NO_COLOR", "1");
    let exp = Exporter::start_command(cmd);

    // A child cgroup made once the exporter has swept the parent: a `started` event.
    let first = format!(
        "SELECT count(usage_seconds) FROM container_cpu WHERE id = '{}'",
        cg.id
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = db.query(DB, &first);
        if has_data(&answer) == Ok(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no container_cpu point for {} reached InfluxDB ({first} returned {}); \
             exporter log:\n{}",
            cg.id,
            short(&answer),
            log_tail(&exp)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let children = ChildDirs(cg.dirs().iter().map(|d| d.join("late")).collect());
    for c in &children.0 {
        std::fs::create_dir(c).unwrap_or_else(|e| panic!("mkdir {}: {e}", c.display()));
    }

    // Wait for two buckets of each rate, the findings and the events.
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut empty;
    let mut answers: Vec<Value>;
    loop {
        empty = Vec::new();
        answers = Vec::new();
        for (q, text) in all.iter().zip(&sent) {
            let answer = db.query(DB, text);
            match has_data(&answer) {
                Err(e) => panic!(
                    "{}: InfluxDB rejected the query: {e}\nsent: {text}\ngot: {}",
                    q.place,
                    short(&answer)
                ),
                Ok(true) => {
                    let missing = missing_series(&q.text, &answer);
                    if !missing.is_empty() {
                        empty.push(format!(
                            "{}: no series {}:\n  sent: {text}\n  got: {}",
                            q.place,
                            missing.join(", "),
                            short(&answer)
                        ));
                    }
                }
                Ok(false) if condition(q).is_some() => {}
                Ok(false) => empty.push(format!(
                    "{}:\n  sent: {text}\n  got: {}",
                    q.place,
                    short(&answer)
                )),
            }
            answers.push(answer);
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        empty.is_empty(),
        "{} queries returned no data or not what the workload makes:\n{}\nexporter log:\n{}",
        empty.len(),
        empty.join("\n"),
        log_tail(&exp)
    );
    // Every conditional or expected entry matches some query (the lists stay current).
    for (part, why) in &conditional {
        assert!(
            all.iter().any(|q| q.text.contains(part.as_str())),
            "{part} ({why}) matches no query"
        );
    }
    for (part, tag, value) in EXPECTED_SERIES {
        assert!(
            all.iter().any(|q| q.text.contains(part)),
            "{part} (expected to show {tag}={value}) matches no query"
        );
    }
    for (q, answer) in all.iter().zip(&answers) {
        eprintln!("{}: {}", q.place, summary(answer));
        if let Some(why) = condition(q) {
            let got = if has_data(answer) == Ok(true) {
                "had data"
            } else {
                "empty"
            };
            eprintln!("conditional ({why}): {}: {got}", q.place);
        }
    }
    eprintln!(
        "{} queries run; {:.1} s in all",
        all.len(),
        started.elapsed().as_secs_f64()
    );
}
