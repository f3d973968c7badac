//! The shipped Grafana dashboards (deploy/grafana/dashboards), read for the tests that check
//! them: their panels and every query they hold, by place.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Each dashboard file's name and JSON, by name.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("a directory entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            out.push((
                p.file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned(),
                v,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The dashboard of file `name`.
pub fn dashboard(name: &str) -> Value {
    dashboards()
        .into_iter()
        .find(|(f, _)| f == name)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no dashboard {name}"))
}

/// The datasource template variable.
pub fn datasource_var(d: &Value) -> &Value {
    d["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["type"] == "datasource"))
        .unwrap_or_else(|| panic!("{}: no datasource variable", d["title"]))
}

/// Over InfluxDB (InfluxQL), not Prometheus.
pub fn is_influx(d: &Value) -> bool {
    datasource_var(d)["query"] == "influxdb"
}

/// Panels, rows' nested panels included, rows left out.
pub fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

/// One query of a dashboard: where it is, and its text.
pub struct Query {
    pub place: String,
    pub text: String,
    /// A `label_values(selector, label)` variable query: the label.
    pub label: Option<String>,
}

/// Every query: panels' targets, annotations, query variables.
pub fn queries(d: &Value) -> Vec<Query> {
    let key = if is_influx(d) { "query" } else { "expr" };
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().expect("targets") {
            out.push(Query {
                place: format!("panel {:?} target {}", p["title"], t["refId"]),
                text: t[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {}: a target without a query", p["title"]))
                    .to_string(),
                label: None,
            });
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if a["builtIn"] == 1 {
            continue;
        }
        out.push(Query {
            place: format!("annotation {:?}", a["name"]),
            text: a["expr"].as_str().expect("an annotation expr").to_string(),
            label: None,
        });
    }
    for v in variables(d) {
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("variable {}: no query text", v["name"]));
        let (text, label) = match q.strip_prefix("label_values(") {
            Some(rest) => {
                let rest = rest.strip_suffix(')').expect("label_values(...)");
                let (sel, label) = rest.rsplit_once(',').expect("label_values(sel, label)");
                (sel.trim().to_string(), Some(label.trim().to_string()))
            }
            None => (q.to_string(), None),
        };
        out.push(Query {
            place: format!("variable {}", v["name"]),
            text,
            label,
        });
    }
    out
}

/// The template variables with a query (not the datasource one).
pub fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter(|v| v["type"] == "query")
        .collect()
}

/// The whole disk behind `path`, as `major:minor` (a partition's parent disk).
pub fn disk_of(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (maj, min) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
    if sys.join("partition").exists() {
        return std::fs::read_to_string(sys.join("../dev"))
            .ok()
            .map(|s| s.trim().to_string());
    }
    sys.exists().then(|| format!("{maj}:{min}"))
}

/// Work that gives the dashboards' panels data, all in `cg` and in namespace `pair.a` (so the
/// first process shows its interface): direct disk IO on a file in `dir`, pings to the other
/// namespace, and a CPU burner.
pub fn dashboard_workload(cg: &mut crate::TestCgroup, pair: &crate::NetnsPair, dir: &Path) {
    let file = dir.join("io");
    let script = format!(
        "while :; do dd if=/dev/zero of={f} bs=64k count=16 oflag=direct 2>/dev/null; \
         dd if={f} of=/dev/null bs=64k iflag=direct 2>/dev/null; \
         ping -c 2 -i 0.2 -W 1 {peer} >/dev/null 2>&1; sleep 0.3; done",
        f = file.display(),
        peer = pair.b_addr
    );
    cg.spawn(&mut crate::NetnsPair::exec(&pair.a, "sh", &["-c", &script]));
    cg.spawn(&mut crate::NetnsPair::exec(
        &pair.a,
        "sh",
        &["-c", "while :; do :; done"],
    ));
}
