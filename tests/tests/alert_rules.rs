//! The shipped Prometheus rules (`deploy/prometheus/rules.yml`): promtool accepts them and their
//! unit tests (`deploy/prometheus/tests.yml`) pass, every alert has a case where it fires and one
//! where it must not, every series they use is one docs/METRICS.md documents, and the Kubernetes
//! PrometheusRule is the same rules, as its script makes it.
//!
//! promtool and python3 (PyYAML, to read the YAML) come from `scripts/test.sh`; a missing tool
//! fails the test with that hint, never skips it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use tests::repo_root as repo;

fn rules_file() -> PathBuf {
    repo().join("deploy/prometheus/rules.yml")
}

fn tests_file() -> PathBuf {
    repo().join("deploy/prometheus/tests.yml")
}

fn run(program: &str, args: &[&str]) -> Output {
    tests::run_tool(Command::new(program).args(args).current_dir(repo()))
}

fn text(o: &Output) -> String {
    tests::output_text(o)
}

/// A YAML file as JSON, through PyYAML (as tests/tests/deploy.rs reads the manifests).
fn yaml(path: &Path) -> Value {
    let script =
        "import json, sys, yaml\njson.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)\n";
    let o = run("python3", &["-c", script, path.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "reading {} with python3 + PyYAML failed (run {}):\n{}",
        path.display(),
        tests::SETUP,
        text(&o)
    );
    serde_json::from_slice(&o.stdout).expect("python3 printed JSON")
}

fn rules() -> Vec<Value> {
    let doc = yaml(&rules_file());
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

fn alerts() -> Vec<Value> {
    rules()
        .into_iter()
        .filter(|r| r["alert"].is_string())
        .collect()
}

#[test]
fn promtool_checks_the_rules() {
    let f = rules_file();
    let o = run("promtool", &["check", "rules", f.to_str().unwrap()]);
    assert!(o.status.success(), "promtool check rules:\n{}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
}

#[test]
fn promtool_unit_tests_pass() {
    let f = tests_file();
    let o = run("promtool", &["test", "rules", f.to_str().unwrap()]);
    assert!(o.status.success(), "promtool test rules:\n{}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
}

#[test]
fn promtool_unit_tests_can_fail() {
    // So that a stubbed promtool, or tests that expect nothing, cannot pass the test above:
    // the same tests against rules whose alerts all have another severity must fail.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    let changed = rules.replace("severity: ", "severity: x");
    assert_ne!(rules, changed);
    std::fs::write(dir.path().join("rules.yml"), changed).unwrap();
    std::fs::copy(tests_file(), dir.path().join("tests.yml")).unwrap();
    let t = dir.path().join("tests.yml");
    let o = run("promtool", &["test", "rules", t.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    for a in alerts() {
        let name = a["alert"].as_str().unwrap();
        assert!(
            text(&o).contains(&format!("alertname: {name},")),
            "no test of {name} noticed the change:\n{}",
            text(&o)
        );
    }
}

#[test]
fn every_alert_has_summary_description_and_runbook() {
    let alerts = alerts();
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    let expected = BTreeSet::from([
        "ContainerPolicyViolation",
        "CryptominerSuspected",
        "ReverseShellSuspected",
        "DroppedBinaryExecuted",
        "FilelessExecution",
        "UnexpectedListener",
        "UnexpectedProcess",
        "UnexpectedPeer",
        "UnauthorizedConnection",
        "CpuBurnAtQuota",
        "EgressSpike",
        "ProcessSurge",
        "ContainerOOMKilled",
        "ContainerMemoryNearLimit",
        "ContainerCpuThrottlingHigh",
        "ContainerRestarting",
        "ContainerLayerFilling",
        "NodeIOWaitHigh",
        "NodeDiskWillFill",
        "NodePressureHigh",
        "NodeCapacityAtRisk",
        "CriticalContainerAbsent",
        "CriticalContainerRestarting",
        "CollectorDown",
        "CollectorSweepErrors",
        "CollectorSinkDropping",
        "CollectorSinkSpoolUnusable",
        "CollectorInotifyLimit",
        "CollectorExecEventsUnavailable",
    ]);
    assert_eq!(names, expected);
    assert_eq!(alerts.len(), expected.len(), "each alert once");
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        for k in ["summary", "description", "runbook"] {
            let v = a["annotations"][k].as_str().unwrap_or("");
            assert!(!v.trim().is_empty(), "{name}: no {k} annotation");
        }
        assert!(a["labels"]["severity"].is_string(), "{name}: no severity");
        let desc = a["annotations"]["description"].as_str().unwrap();
        // A container alert names the container: cgroup, name, image and, where there is
        // one, its pod.
        let expr = a["expr"].as_str().unwrap();
        let container_alert = expr.contains("container_") || expr.contains("container:");
        // Aggregated: over containers (sum), or kept by what outlives a container (a
        // component's pod and container, not its cgroup or runtime name).
        let aggregated = expr.contains("sum(")
            || expr.contains("group by")
            || name.starts_with("Critical")
            || name.starts_with("Collector");
        if container_alert && !aggregated {
            for l in ["name", "image"] {
                assert!(
                    desc.contains(&format!("$labels.{l}")),
                    "{name}: its description does not name the container's {l}"
                );
            }
            if name != "ContainerPolicyViolation" {
                // container_policy_violation carries no namespace or pod.
                assert!(desc.contains("$labels.pod"), "{name}: no pod");
                assert!(desc.contains("$labels.namespace"), "{name}: no namespace");
            }
        }
    }
}

/// `id` and `instance` of a series written as promtool's `input_series` takes it.
fn identity(series: &str) -> (String, String) {
    let get = |label: &str| {
        let key = format!("{label}=\"");
        series
            .find(&key)
            .map(|i| {
                let rest = &series[i + key.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_string()
            })
            .unwrap_or_default()
    };
    (get("id"), get("instance"))
}

#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let doc = yaml(&tests_file());
    assert_eq!(doc["rule_files"][0], "rules.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in doc["tests"].as_array().expect("tests") {
        let inputs: BTreeSet<(String, String)> = t["input_series"]
            .as_array()
            .expect("input_series")
            .iter()
            .map(|s| identity(s["series"].as_str().unwrap()))
            .collect();
        for c in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = c["alertname"].as_str().unwrap().to_string();
            let exp = c["exp_alerts"].as_array().cloned().unwrap_or_default();
            // Quiet: nothing expected, or a container or node of the input that none of the
            // expected alerts is about (promtool compares the whole list).
            let alerted: BTreeSet<(String, String)> = exp
                .iter()
                .map(|e| {
                    let l = &e["exp_labels"];
                    let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
                    (s("id"), s("instance"))
                })
                .collect();
            let covers_all = alerted
                .iter()
                .any(|(id, inst)| id.is_empty() && inst.is_empty());
            if exp.is_empty() || (!covers_all && inputs.iter().any(|i| !alerted.contains(i))) {
                quiet.insert(name.clone());
            }
            if !exp.is_empty() {
                for e in &exp {
                    for k in ["summary", "description", "runbook"] {
                        assert!(
                            e["exp_annotations"][k].is_string(),
                            "{name}: a firing case without its expected {k}"
                        );
                    }
                }
                fires.insert(name);
            }
        }
    }
    for a in alerts() {
        let name = a["alert"].as_str().unwrap();
        assert!(fires.contains(name), "{name}: no case where it fires");
        assert!(
            quiet.contains(name),
            "{name}: no case where it must not fire"
        );
    }
}

/// Names of the exporter's series (`container_*`, `machine_*`, `collector_*`) in a text.
fn series_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < b.len() {
        if word(b[i]) && (i == 0 || !word(b[i - 1])) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            let w = &text[start..i];
            if ["container_", "machine_", "collector_"]
                .iter()
                .any(|p| w.starts_with(p))
                && !w.contains(':')
            {
                out.insert(w.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every series name docs/METRICS.md documents: each `code span` that starts with a series
/// name, its `{a,b}` alternatives expanded and its `{labels}` left off.
fn documented() -> BTreeSet<String> {
    let md = std::fs::read_to_string(repo().join("docs/METRICS.md")).unwrap();
    let mut out = BTreeSet::new();
    for (i, span) in md.split('`').enumerate() {
        if i % 2 == 1 {
            out.extend(expand(span));
        }
    }
    out
}

fn expand(span: &str) -> Vec<String> {
    let Some(open) = span.find('{') else {
        let name: String = span
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return vec![name];
    };
    let Some(close) = span[open..].find('}').map(|c| open + c) else {
        return vec![span[..open].to_string()];
    };
    let after = &span[close + 1..];
    if after.starts_with('_') {
        // `machine_pressure_{cpu,memory,io}_waiting_seconds_total`
        span[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{}{}", &span[..open], alt.trim(), after)))
            .collect()
    } else {
        // `container_network_receive_bytes_total{interface}`
        vec![span[..open].to_string()]
    }
}

#[test]
fn rules_use_only_documented_series() {
    let documented = documented();
    // The parser finds what it should.
    for n in [
        "machine_pressure_io_stalled_seconds_total",
        "container_pressure_memory_waiting_seconds_total",
        "container_network_transmit_bytes_total",
        "collector_sink_dropped_total",
        "container_security_findings_total",
    ] {
        assert!(documented.contains(n), "parser missed {n}");
    }
    let mut used = BTreeSet::new();
    for r in rules() {
        used.extend(series_names(r["expr"].as_str().expect("expr")));
    }
    assert!(used.len() >= 25, "{used:?}");
    let missing: Vec<&String> = used.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "rules.yml uses series docs/METRICS.md does not document: {missing:?}"
    );
}

#[test]
fn prometheusrule_is_rules_yml() {
    let shipped = repo().join("deploy/kubernetes/prometheusrule.yaml");
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("prometheusrule.yaml");
    let o = run(
        "sh",
        &[
            "deploy/prometheus/make-prometheusrule.sh",
            made.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&made).unwrap(),
        std::fs::read_to_string(&shipped).unwrap(),
        "{} is stale: run deploy/prometheus/make-prometheusrule.sh",
        shipped.display()
    );
    let pr = yaml(&shipped);
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_eq!(pr["spec"], yaml(&rules_file()), "the same groups");
}
