//! The deployment artifacts under `deploy/`: each is checked by the tool that knows its format
//! (hadolint, kubernetes-validate, systemd-analyze), every flag they hand the exporter is one it
//! accepts, and the manifest keeps the properties the deployment depends on (host pid and
//! network namespaces, read-only host mounts, two capabilities, one port everywhere).
//!
//! The tools come from `scripts/deploy-check-deps.sh`, which `scripts/test.sh` runs; a missing
//! tool fails the test with that hint, never skips it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_exporter");
const PORT: u16 = 9338;

use tests::repo_root as repo;

fn dockerfile() -> PathBuf {
    repo().join("deploy/Dockerfile")
}

fn unit_file() -> PathBuf {
    repo().join("deploy/systemd/collector-exporter.service")
}

/// Every `deploy/kubernetes/*.yaml`, sorted, with or without custom resources.
fn yaml_files(custom: bool) -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| is_custom_resource(p) == custom)
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no manifests in {}", dir.display());
    v
}

/// A file of the prometheus-operator's custom resources (ServiceMonitor, PrometheusRule):
/// kubernetes-validate has no schema for them, so they are checked by
/// `operator_resources_fit_the_daemonset` below (and the rules by tests/tests/alert_rules.rs).
fn is_custom_resource(p: &Path) -> bool {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let custom = text.contains("apiVersion: monitoring.coreos.com/");
    if custom {
        assert!(
            !text.contains("apiVersion: v1\n") && !text.contains("apiVersion: apps/"),
            "{}: keep the operator's custom resources apart from built-in kinds",
            p.display()
        );
    }
    custom
}

/// The manifests of built-in kinds, for kubernetes-validate.
fn manifests() -> Vec<PathBuf> {
    yaml_files(false)
}

/// Runs a tool; a tool that is not installed fails with the setup hint.
fn run_tool(program: &str, args: &[&str], cwd: &Path) -> Output {
    let mut c = Command::new(program);
    c.args(args).current_dir(cwd);
    // A config through the environment could silence rules.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HADOLINT_") {
            c.env_remove(&k);
        }
    }
    tests::run_tool(&mut c)
}

fn text(o: &Output) -> String {
    tests::output_text(o)
}

// ---- the tools ----

#[test]
fn dockerfile_passes_hadolint() {
    let df = dockerfile();
    let o = run_tool(
        "hadolint",
        &[
            "--no-color",
            "--failure-threshold",
            "style",
            df.to_str().unwrap(),
        ],
        &repo(),
    );
    assert!(
        o.status.success(),
        "hadolint {}:\n{}",
        df.display(),
        text(&o)
    );
    assert!(text(&o).trim().is_empty(), "{}", text(&o));
}

#[test]
fn hadolint_does_flag_a_bad_dockerfile() {
    // So that a silent or stubbed hadolint cannot pass the test above.
    let dir = tempfile::tempdir().unwrap();
    let df = dir.path().join("Dockerfile");
    std::fs::write(&df, "FROM debian\nRUN apt-get install curl\n").unwrap();
    let o = run_tool(
        "hadolint",
        &[
            "--no-color",
            "--failure-threshold",
            "style",
            df.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("DL3006"), "{}", text(&o));
}

fn kubernetes_validate(version: Option<&str>, files: &[PathBuf]) -> Output {
    let mut args = vec!["--strict".to_string()];
    if let Some(v) = version {
        args.extend(["--kubernetes-version".to_string(), v.to_string()]);
    }
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tool("kubernetes-validate", &args, &repo())
}

#[test]
fn manifests_pass_kubernetes_validate() {
    let files = manifests();
    let resources = k8s_docs().len();
    // The bundled default (newest) schemas, and 1.30: the oldest the manifest claims
    // (recursiveReadOnly appeared in 1.30).
    for version in [None, Some("1.30.0")] {
        let o = kubernetes_validate(version, &files);
        let out = text(&o);
        assert!(
            o.status.success(),
            "kubernetes-validate {version:?}:\n{out}"
        );
        assert!(!out.contains("ERROR"), "{out}");
        let passed = out.lines().filter(|l| l.contains(" passed ")).count();
        assert_eq!(passed, resources, "every resource checked:\n{out}");
    }
}

#[test]
fn kubernetes_validate_is_strict_about_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(repo().join("deploy/kubernetes/daemonset.yaml")).unwrap();
    assert!(src.contains("readOnlyRootFilesystem: true"));
    let bad = dir.path().join("typo.yaml");
    std::fs::write(
        &bad,
        src.replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesytem: true",
        ),
    )
    .unwrap();
    let o = kubernetes_validate(None, &[bad]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("readOnlyRootFilesytem"), "{}", text(&o));
}

/// The unit, with ExecStart pointed at the tests' exporter binary (verify checks that the
/// program exists), in a fresh directory.
fn unit_copy(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(unit_file()).unwrap();
    let (program, _) = exec_start(&src);
    let p = dir.join("collector-exporter.service");
    std::fs::write(&p, src.replace(&program, BIN)).unwrap();
    p
}

#[test]
fn systemd_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let o = run_tool(
        "systemd-analyze",
        &["verify", unit.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "systemd-analyze verify:\n{}", text(&o));
    let out = text(&o);
    assert!(
        !out.contains("collector-exporter.service"),
        "verify has remarks about the unit:\n{out}"
    );
}

#[test]
fn systemd_unit_is_sandboxed() {
    // systemd's own exposure score, shown 0.0 (locked down) .. 10.0 (unprotected); 2.1 when
    // written (root with CAP_DAC_READ_SEARCH), 2.3 with CAP_NET_ADMIN for the process events
    // connector. --threshold counts in tenths: 25 = 2.5.
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let o = run_tool(
        "systemd-analyze",
        &[
            "security",
            "--offline=yes",
            "--threshold=25",
            "--no-pager",
            unit.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        o.status.success(),
        "exposure above 2.5 (or security failed):\n{}",
        text(&o)
    );
    let src = std::fs::read_to_string(unit_file()).unwrap();
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "MemoryDenyWriteExecute=yes",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_NET_ADMIN\n",
        // The process events connector: a netlink socket, in the host's namespaces.
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX\n",
        "AmbientCapabilities=\n",
    ] {
        assert!(src.contains(line), "unit lacks {line:?}");
    }
}

// ---- what the artifacts pass to the exporter ----

/// `ExecStart=` split into the program and its arguments (the unit uses no quoting).
fn exec_start(unit: &str) -> (String, Vec<String>) {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("unit has ExecStart=");
    assert!(
        !line.contains(['"', '\'', '\\', '$', '%']),
        "ExecStart uses quoting or specifiers; split it properly: {line}"
    );
    let mut words = line.split_whitespace().map(String::from);
    let program = words.next().expect("ExecStart names a program");
    (program, words.collect())
}

/// The final stage's ENTRYPOINT (exec form) and USER.
fn dockerfile_final_stage() -> (Vec<String>, Option<String>) {
    let src = std::fs::read_to_string(dockerfile()).unwrap();
    let lines: Vec<&str> = src.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .expect("Dockerfile has FROM");
    let stage = &lines[last_from..];
    let entry = stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("final stage has ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(entry)
        .unwrap_or_else(|e| panic!("ENTRYPOINT must be the JSON exec form ({e}): {entry}"));
    let user = stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .map(|u| u.trim().to_string());
    (entry, user)
}

/// Every document of every manifest, as JSON (PyYAML reads them: kubernetes-validate needs it).
fn k8s_docs() -> Vec<Value> {
    yaml_docs(&manifests())
}

fn yaml_docs(paths: &[PathBuf]) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = []\n\
                  for f in sys.argv[1:]:\n    \
                      with open(f) as fh:\n        \
                          docs += [d for d in yaml.safe_load_all(fh) if d]\n\
                  json.dump(docs, sys.stdout)\n";
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["-c", script];
    args.extend(files.iter().map(String::as_str));
    let o = run_tool("python3", &args, &repo());
    assert!(
        o.status.success(),
        "reading the manifests with python3 + PyYAML failed (run {}):\n{}",
        tests::SETUP,
        text(&o)
    );
    serde_json::from_slice(&o.stdout).expect("python3 printed JSON")
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The exporter's container in the DaemonSet.
fn exporter_container(ds: &Value) -> &Value {
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// A path of the container's `/host/...` mounts as the same path on this machine.
fn host_path(p: &str) -> String {
    for (mount, host) in [
        ("/host/proc", "/proc"),
        ("/host/sys", "/sys"),
        ("/host/rootfs", ""),
    ] {
        if p == mount {
            return if host.is_empty() { "/" } else { host }.to_string();
        }
        if let Some(rest) = p.strip_prefix(mount).filter(|r| r.starts_with('/')) {
            return format!("{host}{rest}");
        }
    }
    p.to_string()
}

/// Runs the exporter with `args` (host paths mapped back onto this machine's) plus
/// `snapshot`: exit 0 means clap and the settings check took every flag.
fn assert_flags_accepted(what: &str, args: &[String]) {
    let mapped: Vec<String> = args
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => format!("{k}={}", host_path(v)),
            None => host_path(a),
        })
        .collect();
    let o = Command::new(BIN)
        .args(&mapped)
        .args(["snapshot", "--format", "prometheus"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{what}: `exporter {} snapshot` exited {}:\n{}",
        mapped.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let body = String::from_utf8_lossy(&o.stdout);
    assert!(
        body.contains("container_cpu_usage_seconds_total"),
        "{what}: no figures printed"
    );
}

#[test]
fn dockerfile_entrypoint_flags_are_accepted() {
    let (entry, _) = dockerfile_final_stage();
    assert_eq!(entry[0], "/collector-exporter");
    assert_flags_accepted("Dockerfile ENTRYPOINT", &entry[1..]);
}

#[test]
fn daemonset_flags_are_accepted() {
    let docs = k8s_docs();
    let c = exporter_container(kind(&docs, "DaemonSet"));
    // `command` would replace the image's ENTRYPOINT; `args` are appended to it.
    let mut argv = if c.get("command").is_some() {
        strings(&c["command"])
    } else {
        dockerfile_final_stage().0
    };
    argv.extend(strings(&c["args"]));
    assert_flags_accepted("DaemonSet (ENTRYPOINT + args)", &argv[1..]);
}

#[test]
fn systemd_exec_start_flags_are_accepted() {
    let (_, args) = exec_start(&std::fs::read_to_string(unit_file()).unwrap());
    assert_flags_accepted("systemd ExecStart", &args);
}

// ---- properties the deployment depends on ----

/// The value of `--<name>=V` or `--<name> V` in argv.
fn flag(argv: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    argv.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            Some(v.to_string())
        } else if *a == long {
            argv.get(i + 1).cloned()
        } else {
            None
        }
    })
}

fn listen_port(argv: &[String]) -> u16 {
    flag(argv, "web.listen-address")
        .map(|a| {
            a.rsplit(':')
                .next()
                .unwrap()
                .parse()
                .expect("a port in --web.listen-address")
        })
        .unwrap_or(PORT)
}

#[test]
fn daemonset_keeps_its_promises() {
    let docs = k8s_docs();
    let ds = kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    let c = exporter_container(ds);
    let mut argv = dockerfile_final_stage().0;
    argv.extend(strings(&c["args"]));

    // Host pid namespace: without it cgroup.procs of other containers reads empty.
    assert_eq!(spec["hostPID"], true, "hostPID");
    // Host network namespace: the process events connector answers only there.
    assert_eq!(spec["hostNetwork"], true, "hostNetwork");
    assert_eq!(
        spec["dnsPolicy"], "ClusterFirstWithHostNet",
        "cluster DNS kept with hostNetwork"
    );
    assert_ne!(
        spec["hostUsers"], false,
        "the connector ignores subscribers in a user namespace"
    );
    // Every node, whatever its taints.
    let tolerations = spec["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "a toleration of every taint: {tolerations:?}"
    );

    // Least privilege: two capabilities (deploy/README.md says why), nothing writable.
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_ne!(sc["privileged"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        ["DAC_READ_SEARCH", "NET_ADMIN"]
    );
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let run_as = sc["runAsUser"]
        .as_u64()
        .or(spec["securityContext"]["runAsUser"].as_u64())
        .expect("runAsUser");
    let (_, user) = dockerfile_final_stage();
    let user = user.expect("the image sets USER");
    assert_eq!(
        user.split(':').next().unwrap(),
        run_as.to_string(),
        "image USER and pod runAsUser agree"
    );
    assert_eq!(spec["automountServiceAccountToken"], false);

    // The host's /proc, /sys and /, read-only, where the flags say.
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let volumes = spec["volumes"].as_array().expect("volumes");
    for (host, flag_name) in [
        ("/proc", "path.procfs"),
        ("/sys", "path.sysfs"),
        ("/", "path.rootfs"),
    ] {
        let vol = volumes
            .iter()
            .find(|v| v["hostPath"]["path"] == host)
            .unwrap_or_else(|| panic!("a hostPath volume of {host}"));
        let m = mounts
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap_or_else(|| panic!("{host} is mounted"));
        assert_eq!(m["readOnly"], true, "{host} mounted read-only");
        assert_eq!(
            m["mountPath"].as_str(),
            flag(&argv, flag_name).as_deref(),
            "--{flag_name} names the mount of {host}"
        );
    }
    assert!(
        mounts.iter().all(|m| m["readOnly"] == true),
        "every mount read-only"
    );
    // The runtimes' sockets are reached through the host's / (and not through /var/run, a
    // symlink that would resolve inside the container).
    let rootfs = flag(&argv, "path.rootfs").expect("--path.rootfs");
    for rt in ["docker", "containerd", "crio", "podman"] {
        if let Some(sock) = flag(&argv, &format!("runtime.{rt}-socket")) {
            assert!(
                sock == "off"
                    || (sock.starts_with(&format!("{rootfs}/")) && !sock.contains("/var/run/")),
                "--runtime.{rt}-socket={sock}"
            );
        }
    }

    // One port everywhere: the flag, the container, the probes, the annotations, the image.
    let port = listen_port(&argv);
    assert_eq!(port, PORT);
    let ports = c["ports"].as_array().expect("ports");
    let named = ports
        .iter()
        .find(|p| p["containerPort"] == u64::from(port))
        .expect("containerPort = listen port");
    let port_name = named["name"].as_str().expect("the port has a name");
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert!(
            get["port"] == port_name || get["port"] == u64::from(port),
            "{probe} port"
        );
    }
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], port.to_string());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    let df = std::fs::read_to_string(dockerfile()).unwrap();
    assert!(
        df.lines().any(|l| l.trim() == format!("EXPOSE {port}")),
        "Dockerfile EXPOSEs {port}"
    );

    // Sized, both ways.
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "resources.{k}.{r}");
        }
    }

    // The Service selects these pods, on the named port.
    let svc = kind(&docs, "Service");
    let labels = &pod["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&labels[k], v, "Service selector {k}");
    }
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port_name);
    // Everything in one namespace, which the file creates.
    let ns = kind(&docs, "Namespace")["metadata"]["name"].clone();
    for d in &docs {
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], ns, "{} namespace", d["kind"]);
        }
    }
}

/// The ServiceMonitor scrapes the DaemonSet's Service on its named port, in its namespace,
/// and drops the operator's namespace/pod/container target labels (the series carry the
/// scraped containers' own); the PrometheusRule is well-formed (its rules are rules.yml's,
/// checked by tests/tests/alert_rules.rs).
#[test]
fn operator_resources_fit_the_daemonset() {
    let docs = k8s_docs();
    let svc = kind(&docs, "Service");
    let ns = &svc["metadata"]["namespace"];
    let crs = yaml_docs(&yaml_files(true));
    for d in &crs {
        assert_eq!(d["apiVersion"], "monitoring.coreos.com/v1", "{}", d["kind"]);
        assert_eq!(&d["metadata"]["namespace"], ns, "{} namespace", d["kind"]);
        assert!(d["metadata"]["name"].is_string(), "{} name", d["kind"]);
    }
    let sm = kind(&crs, "ServiceMonitor");
    let spec = &sm["spec"];
    let selector = spec["selector"]["matchLabels"]
        .as_object()
        .expect("ServiceMonitor selector.matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects {k}"
        );
    }
    assert_eq!(spec["namespaceSelector"]["matchNames"][0], *ns);
    let endpoints = spec["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(endpoints[0]["path"], "/metrics");
    let drops: Vec<&str> = endpoints[0]["relabelings"]
        .as_array()
        .expect("relabelings")
        .iter()
        .filter(|r| r["action"] == "labeldrop")
        .filter_map(|r| r["regex"].as_str())
        .collect();
    for label in ["namespace", "pod", "container"] {
        assert!(
            drops.iter().any(|re| re
                .trim_matches(|c| c == '(' || c == ')')
                .split('|')
                .any(|x| x == label)),
            "the target label {label} is dropped: {drops:?}"
        );
    }
    let pr = kind(&crs, "PrometheusRule");
    let groups = pr["spec"]["groups"].as_array().expect("spec.groups");
    assert!(!groups.is_empty());
    for g in groups {
        assert!(g["name"].is_string());
        for r in g["rules"].as_array().expect("rules") {
            assert!(r["expr"].is_string(), "{r}");
            assert!(r["alert"].is_string() != r["record"].is_string(), "{r}");
        }
    }
}

#[test]
fn systemd_unit_listens_on_the_same_port() {
    let (_, args) = exec_start(&std::fs::read_to_string(unit_file()).unwrap());
    assert_eq!(listen_port(&args), PORT);
}

/// Adds `value` at a JSON pointer, as a JSON patch's `add` does (`-` appends to an array).
fn json_patch_add(doc: &mut Value, path: &str, value: Value) {
    let (parent, last) = path.rsplit_once('/').expect("a JSON pointer");
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}: not in the DaemonSet"));
    match target {
        Value::Array(a) if last == "-" => a.push(value),
        Value::Object(o) => {
            assert!(o.get(last).is_none(), "{path} is already there");
            o.insert(last.to_string(), value);
        }
        other => panic!("{path}: cannot add to {other}"),
    }
}

/// deploy/kubernetes/remote-write/: the DaemonSet with its JSON patch passes
/// kubernetes-validate beside the ConfigMap, has the node's name from the downward API, mounts
/// the ConfigMap where `--config.file` looks and the spool writable, and the exporter takes its
/// flags and that configuration file.
#[test]
fn remote_write_example_patches_the_daemonset_into_a_working_one() {
    let dir = repo().join("deploy/kubernetes/remote-write");
    let docs = k8s_docs();
    let mut ds = kind(&docs, "DaemonSet").clone();
    let patch = yaml_docs(&[dir.join("daemonset-patch.yaml")]);
    for op in patch[0]
        .as_array()
        .expect("a JSON patch: a list of operations")
    {
        assert_eq!(op["op"], "add", "{op}");
        json_patch_add(
            &mut ds,
            op["path"].as_str().expect("a path"),
            op["value"].clone(),
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let patched = tmp.path().join("daemonset-patched.yaml");
    std::fs::write(&patched, serde_json::to_string(&ds).unwrap()).unwrap();
    let o = kubernetes_validate(None, &[patched, dir.join("configmap.yaml")]);
    assert!(o.status.success(), "kubernetes-validate:\n{}", text(&o));

    let c = exporter_container(&ds);
    let env = c["env"].as_array().expect("env");
    assert!(
        env.iter().any(|e| e["name"] == "NODE_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "{env:?}"
    );
    let mut argv = dockerfile_final_stage().0;
    argv.extend(strings(&c["args"]));
    let cfg_path = flag(&argv, "config.file").expect("--config.file");
    let (cfg_dir, cfg_name) = cfg_path.rsplit_once('/').unwrap();
    let cms = yaml_docs(&[dir.join("configmap.yaml")]);
    let cm = kind(&cms, "ConfigMap");
    let volumes = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |vol: &Value| {
        mounts
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap_or_else(|| panic!("{vol} is not mounted"))
    };
    let cm_vol = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == cm["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    assert_eq!(mount_of(cm_vol)["mountPath"], cfg_dir);
    let toml = cm["data"][cfg_name]
        .as_str()
        .expect("the file in the ConfigMap");
    let spool = toml
        .lines()
        .find_map(|l| l.strip_prefix("spool_dir = "))
        .expect("a spool")
        .trim_matches('"');
    assert!(
        mounts
            .iter()
            .any(|m| m["readOnly"] != true
                && spool.starts_with(m["mountPath"].as_str().unwrap_or("-"))),
        "the spool {spool} is on a writable mount"
    );

    let local = tmp.path().join(cfg_name);
    std::fs::write(&local, toml).unwrap();
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| match a.strip_prefix("--config.file=") {
            Some(_) => format!("--config.file={}", local.display()),
            None => a,
        })
        .collect();
    // What the pod's environment holds: the node's name and the Secret's password.
    std::env::set_var("NODE_NAME", "node-a");
    std::env::set_var("REMOTE_WRITE_PASSWORD", "secret");
    assert_flags_accepted("remote-write DaemonSet", &argv[1..]);
}
