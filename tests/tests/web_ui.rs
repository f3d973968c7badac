//! The built-in web page in a real headless Chromium, over real cgroups made here: the
//! overview lists them with their figures, sorts and filters; a container's page draws its
//! charts; a finding shows on the events page; no script error; basic auth covers the page,
//! its assets and its JSON, and the page works over TLS. Screenshots go to
//! `$UI_SCREENSHOTS`, else `<target dir>/ui-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use tests::webdriver::Browser;
use tests::{http_get, Exporter, TestCgroup};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");

fn burner() -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", "while :; do :; done"]);
    c
}

/// The exporter sweeping every 250 ms over `ids`, with a minute of history unless `more` says.
fn exporter(ids: &[&str], more: &[&str]) -> Exporter {
    let mut args = vec![
        "--housekeeping.interval",
        "250ms",
        "--containers.process-interval",
        "250ms",
    ];
    if !more.contains(&"--web.ui-history") {
        args.extend(["--web.ui-history", "1m"]);
    }
    for id in ids {
        args.extend(["--cgroups.include", id]);
    }
    args.extend(tests::NO_RUNTIMES);
    args.extend_from_slice(more);
    Exporter::start(BIN, &args)
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // <target>/debug/deps/web_ui-<hash>
            let exe = std::env::current_exe().expect("the test's path");
            let target = exe.ancestors().nth(3).expect("a target dir").to_path_buf();
            target.join("ui-screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// No script error on the page: neither caught by its own collector nor logged as SEVERE.
fn no_errors(b: &Browser, page: &str) {
    let caught = b.exec("return window.pageErrors", &[]);
    assert_eq!(caught, json!([]), "script errors on {page}");
    let severe: Vec<Value> = b
        .log()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "errors logged on {page}: {severe:?}");
}

/// The ids of the overview's rows, top to bottom.
const ROW_IDS: &str =
    "return [...document.querySelectorAll('#containers tbody tr')].map(r => r.dataset.id)";

/// The cores a row's CPU cell shows (its data-value) when over 0.1, else null.
const BUSY_CPU: &str = "const r = [...document.querySelectorAll('#containers tbody tr')]
      .find(r => r.dataset.id === arguments[0]);
    const v = r && r.querySelector('td[data-value]').dataset.value;
    return v && Number(v) > 0.1 ? Number(v) : null";

#[test]
fn the_page_over_real_containers() {
    let mut busy = TestCgroup::new("ccol-ui-busy");
    busy.set_where_present("cpu.cfs_quota_us", "50000");
    busy.set_where_present("cpu.max", "50000 100000");
    let limit = (256u64 << 20).to_string();
    busy.set_where_present("memory.limit_in_bytes", &limit);
    busy.set_where_present("memory.max", &limit);
    busy.spawn(&mut burner());
    // A name with what HTML would take for markup: it must show as text.
    let mut calm = TestCgroup::new("ccol-ui-<b>calm<&\"é>");
    calm.spawn(&mut tests::sleeper());
    let mut miner = TestCgroup::new("ccol-ui-miner");
    miner.spawn(&mut tests::sleeper());
    let exp = exporter(&[&busy.id, &calm.id, &miner.id], &[]);
    assert_eq!(exp.get("/healthz").status, 200);
    let base = format!("http://{}", exp.addr);
    let shots = screenshots();
    let b = Browser::start();

    // 1. The overview lists them, the busy one burning CPU, each with its memory.
    b.goto(&format!("{base}/"));
    let busy_cpu = b.wait_for("the busy container's CPU", BUSY_CPU, &[json!(busy.id)]);
    assert!(
        busy_cpu.as_f64().unwrap() <= 0.7,
        "over its quota: {busy_cpu}"
    );
    let rows = b.exec(ROW_IDS, &[]);
    for id in [&busy.id, &calm.id, &miner.id] {
        assert!(
            rows.as_array().unwrap().contains(&json!(id)),
            "{id} not in {rows}"
        );
    }
    let calm_row = b.exec(
        "const r = [...document.querySelectorAll('#containers tbody tr')]
           .find(r => r.dataset.id === arguments[0]);
         return {name: r.querySelector('th').textContent,
                 memory: r.querySelectorAll('td')[3].textContent,
                 state: r.querySelectorAll('td')[7].textContent,
                 markup: document.querySelectorAll('#containers tbody b').length}",
        &[json!(calm.id)],
    );
    assert_eq!(
        calm_row["name"],
        calm.id.trim_start_matches('/'),
        "{calm_row}"
    );
    assert_eq!(calm_row["markup"], 0, "a name became markup: {calm_row}");
    assert!(
        calm_row["memory"].as_str().unwrap().contains("iB"),
        "{calm_row}"
    );
    let machine = b.exec("return document.getElementById('machine').textContent", &[]);
    for part in ["cores", "CPU by mode", "Disk space", "Pressure"] {
        assert!(machine.as_str().unwrap().contains(part), "{machine}");
    }
    no_errors(&b, "the overview");

    // 2. Sorting by CPU (a click: biggest first; Enter on the focused header: reversed), then
    //    filtering by name.
    b.click("th[data-key=cpu] button");
    let order = b.exec(ROW_IDS, &[]);
    assert_eq!(order[0], json!(busy.id), "{order}");
    assert_eq!(
        b.exec(
            "return document.querySelector('th[data-key=cpu]').getAttribute('aria-sort')",
            &[]
        ),
        "descending"
    );
    b.type_into("th[data-key=cpu] button", "\u{E007}");
    let order = b.exec(ROW_IDS, &[]);
    assert_eq!(
        order.as_array().unwrap().last(),
        Some(&json!(busy.id)),
        "{order}"
    );
    let busy_name = busy.id.trim_start_matches('/');
    b.type_into("#filter", busy_name);
    assert_eq!(b.exec(ROW_IDS, &[]), json!([busy.id]));
    // Filtered rows stay filtered across refreshes.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(b.exec(ROW_IDS, &[]), json!([busy.id]));
    b.goto(&format!("{base}/"));
    b.wait_for(
        "the rows again",
        "return document.querySelectorAll('#containers tbody tr').length >= 3",
        &[],
    );
    // A keyboard user on a row's link stays there across refreshes.
    b.exec(
        "document.querySelector(`#containers tr[data-id=\"${arguments[0]}\"] a`).focus()",
        &[json!(busy.id)],
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    let focused = b.exec(
        "const a = document.activeElement; return a.closest('tr') && a.closest('tr').dataset.id",
        &[],
    );
    assert_eq!(focused, json!(busy.id));
    b.exec("document.activeElement.blur()", &[]);
    b.screenshot(&shots.join("overview.png"));
    // A phone: the page does not overflow sideways.
    b.set_window(390, 844);
    let overflow = b.exec(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        &[],
    );
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "wider than a phone: {overflow}"
    );
    b.screenshot(&shots.join("overview-phone.png"));
    b.set_window(1280, 900);

    // 3. The busy container's page: charts with points, and its spec.
    b.click(&format!("#containers tr[data-id=\"{}\"] th a", busy.id));
    let points = b.wait_for(
        "the CPU chart's points",
        "const f = document.querySelector('#charts figure');
         const p = f && f.querySelector('path.line');
         return p && Number(p.dataset.points) >= 3 ? Number(p.dataset.points) : null",
        &[],
    );
    assert!(points.as_i64().unwrap() >= 3);
    let charts = b.exec(
        "return [...document.querySelectorAll('#charts figure')].map(f =>
           [f.querySelector('figcaption strong').textContent, Number(f.dataset.points)])",
        &[],
    );
    let memory = charts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == "Memory")
        .unwrap_or_else(|| panic!("no memory chart: {charts}"));
    assert!(memory[1].as_i64().unwrap() >= 2, "{charts}");
    assert_eq!(charts.as_array().unwrap().len(), 6, "{charts}");
    let quota = b.exec(
        "return document.querySelectorAll('#charts figure')[0].querySelectorAll('line.limit').length",
        &[],
    );
    assert_eq!(quota, 1, "no quota line on the CPU chart");
    let spec = b.exec("return document.getElementById('spec').textContent", &[]);
    assert!(spec.as_str().unwrap().contains("0.50 cores"), "{spec}");
    b.wait_for(
        "the processes",
        "return document.querySelector('#procs tbody').textContent.includes('while')",
        &[],
    );
    b.screenshot(&shots.join("container.png"));
    b.exec("window.scrollTo(0, document.body.scrollHeight)", &[]);
    b.screenshot(&shots.join("container-details.png"));
    no_errors(&b, "the container page");

    // 4. A finding: a process named like a miner, on the events page.
    let dir = tempfile::tempdir().expect("a temp dir");
    let xmrig = dir.path().join("xmrig");
    std::fs::copy("/bin/sleep", &xmrig).expect("copy sleep");
    miner.spawn(Command::new(&xmrig).arg("60"));
    b.goto(&format!("{base}/ui/events"));
    let finding = b.wait_for(
        "the miner finding",
        "const r = [...document.querySelectorAll('#events tbody tr')]
           .find(r => r.dataset.kind === 'miner_process' && r.textContent.includes(arguments[0]));
         return r ? r.textContent : null",
        &[json!(miner.id.trim_start_matches('/'))],
    );
    assert!(finding.as_str().unwrap().contains("finding"), "{finding}");
    // Filtered by kind: findings only.
    b.exec(
        "const s = document.getElementById('kind'); s.value = 'findings';
         s.dispatchEvent(new Event('change'))",
        &[],
    );
    let kinds = b.exec(
        "return [...document.querySelectorAll('#events tbody tr')].map(r => r.dataset.kind)",
        &[],
    );
    assert!(
        kinds
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k == "miner_process"),
        "{kinds}"
    );
    b.screenshot(&shots.join("events.png"));
    no_errors(&b, "the events page");
    // The overview now flags the miner's container, in words.
    b.goto(&format!("{base}/"));
    b.wait_for(
        "the finding in the overview",
        "const r = [...document.querySelectorAll('#containers tbody tr')]
           .find(r => r.dataset.id === arguments[0]);
         return r && r.textContent.includes('miner_process')",
        &[json!(miner.id)],
    );
    b.screenshot(&shots.join("overview-finding.png"));
    no_errors(&b, "the overview");
}

fn hash(pass: &str) -> String {
    bcrypt::hash(pass, 4).expect("bcrypt")
}

#[test]
fn basic_auth_covers_the_page_its_assets_and_json() {
    let mut cg = TestCgroup::new("ccol-ui-auth");
    cg.spawn(&mut tests::sleeper());
    let dir = tempfile::tempdir().expect("a temp dir");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  alice: '{}'\n", hash("pa55-word")),
    )
    .expect("write the web config");
    let exp = exporter(&[&cg.id], &["--web.config.file", web.to_str().unwrap()]);
    let id = tests::urlencode(&cg.id);
    let good = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pa55-word")
        )
    };
    let paths = [
        "/".to_string(),
        "/ui/events".into(),
        format!("/ui/containers/{id}"),
        "/ui/assets/app.js".into(),
        "/ui/assets/app.css".into(),
        "/api/v1/machine".into(),
        "/api/v1/overview".into(),
        format!("/api/v1/containers/{id}/history"),
    ];
    // Wait for a first sweep and a recorded point.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while exp.get_with(&paths[7], &[("Authorization", &good)]).status != 200 {
        assert!(std::time::Instant::now() < deadline, "no history");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for p in &paths {
        let r = http_get(exp.addr, p, &[]);
        assert_eq!(r.status, 401, "{p} without credentials");
        assert!(r.header("www-authenticate").is_some(), "{p}");
        let r = http_get(exp.addr, p, &[("Authorization", &good)]);
        assert_eq!(r.status, 200, "{p} with credentials: {}", r.text());
    }
    assert_eq!(http_get(exp.addr, "/ui/metrics", &[]).status, 401);
    let metrics = http_get(exp.addr, "/ui/metrics", &[("Authorization", &good)]);
    assert_eq!(
        (metrics.status, metrics.header("location")),
        (302, Some("/metrics"))
    );
    let page = http_get(exp.addr, "/", &[("Authorization", &good)]);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    let js = http_get(
        exp.addr,
        "/ui/assets/app.js",
        &[("Authorization", &good), ("Accept-Encoding", "gzip")],
    );
    assert_eq!(js.header("content-encoding"), Some("gzip"));
    let etag = js.header("etag").expect("an ETag").to_string();
    let again = http_get(
        exp.addr,
        "/ui/assets/app.js",
        &[("Authorization", &good), ("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);

    // The browser, logged in through the address, gets the page and its data.
    let b = Browser::start();
    b.goto(&format!("http://alice:pa55-word@{}/", exp.addr));
    b.wait_for(
        "the row of the test's container",
        "return [...document.querySelectorAll('#containers tbody tr')]
           .some(r => r.dataset.id === arguments[0])",
        &[json!(cg.id)],
    );
    no_errors(&b, "the overview behind basic auth");
}

/// `--web.ui-history=0`: no points kept, the overview's rates still there.
#[test]
fn no_history_keeps_the_latest_rates() {
    let mut cg = TestCgroup::new("ccol-ui-nohist");
    cg.spawn(&mut burner());
    let exp = exporter(&[&cg.id], &["--web.ui-history", "0"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let cpu = loop {
        let o: Value = serde_json::from_slice(&exp.get("/api/v1/overview").body).expect("JSON");
        let row = o["containers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == cg.id.as_str()).cloned());
        if let Some(cpu) = row.as_ref().and_then(|r| r["cpu_cores"].as_f64()) {
            break cpu;
        }
        assert!(std::time::Instant::now() < deadline, "no CPU rate: {o}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(cpu > 0.1, "{cpu}");
    let h = exp.get(&format!(
        "/api/v1/containers/{}/history",
        tests::urlencode(&cg.id)
    ));
    assert_eq!(h.status, 200, "{}", h.text());
    let h: Value = serde_json::from_slice(&h.body).expect("JSON");
    assert_eq!(
        (h["window_ms"].as_u64(), &h["times_ms"]),
        (Some(0), &json!([]))
    );
    assert_eq!(exp.get("/api/v1/containers/nope/history").status, 404);
}

/// Over TLS with basic auth (one web config, as for /metrics): plain HTTP is refused, and the
/// browser, trusting the test's certificate, logs in and gets the page and its data.
#[test]
fn the_page_over_tls() {
    let mut cg = TestCgroup::new("ccol-ui-tls");
    cg.spawn(&mut tests::sleeper());
    let dir = tempfile::tempdir().expect("a temp dir");
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).expect("write the cert");
    std::fs::write(
        dir.path().join("server.key"),
        ck.signing_key.serialize_pem(),
    )
    .expect("write the key");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  alice: '{}'\n",
            hash("pa55-word")
        ),
    )
    .expect("write the web config");
    let exp = exporter(&[&cg.id], &["--web.config.file", web.to_str().unwrap()]);
    assert_eq!(http_get(exp.addr, "/", &[]).status, 400, "plain HTTP");
    let b = Browser::start_with(&["--ignore-certificate-errors"]);
    b.goto(&format!("https://alice:pa55-word@{}/", exp.addr));
    b.wait_for(
        "the row of the test's container over TLS",
        "return [...document.querySelectorAll('#containers tbody tr')]
           .some(r => r.dataset.id === arguments[0])",
        &[json!(cg.id)],
    );
    b.goto(&format!(
        "https://{}/ui/containers/{}",
        exp.addr,
        tests::urlencode(&cg.id)
    ));
    b.wait_for(
        "the container's charts over TLS",
        "const f = document.querySelector('#charts figure');
         return f && Number(f.dataset.points) >= 2",
        &[],
    );
    no_errors(&b, "the pages over TLS");
}
