//! `--web.config.file`: basic auth on every endpoint, TLS from a test CA made here, client
//! certificates, and bad files refused at start (exit 2, one line naming the key).

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tests::{http_get, Exporter, HttpResponse};

const BIN: &str = env!("CARGO_BIN_EXE_exporter");
const PASSWORD: &str = "s3cret-Pa55";

/// Cheap sweeps of nothing: these tests are about the web side.
const QUIET: [&str; 4] = [
    "--housekeeping.interval",
    "200ms",
    "--cgroups.include",
    "/ccol-web-config-none",
];

fn basic(user: &str, pass: &str) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {enc}")
}

/// A bcrypt hash at the lowest cost, to keep the tests fast.
fn hash(pass: &str) -> String {
    bcrypt::hash(pass, 4).unwrap()
}

/// A test CA with a server certificate (localhost, 127.0.0.1) and a client certificate, and
/// an unrelated CA's client certificate; all written as PEM files into `dir`.
struct Pki {
    dir: PathBuf,
    ca: String,
    client: (String, String),
    rogue_client: (String, String),
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(p, key))
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'static, KeyPair>,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names.clone()).unwrap();
    p.distinguished_name.push(DnType::CommonName, &names[0]);
    p.extended_key_usages = vec![usage];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let (ca_pem, issuer) = ca("ccol test CA");
        let server = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let client = leaf(&["scraper"], ExtendedKeyUsagePurpose::ClientAuth, &issuer);
        let (_, rogue) = ca("ccol rogue CA");
        let rogue_client = leaf(&["intruder"], ExtendedKeyUsagePurpose::ClientAuth, &rogue);
        for (name, text) in [
            ("ca.crt", &ca_pem),
            ("server.crt", &server.0),
            ("server.key", &server.1),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Pki {
            dir: dir.to_path_buf(),
            ca: ca_pem,
            client,
            rogue_client,
        }
    }

    /// Writes `web.yml` beside the certificates (which it names relatively) and returns its path.
    fn web_config(&self, yaml: &str) -> String {
        let p = self.dir.join("web.yml");
        std::fs::write(&p, yaml).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// A client that trusts the test CA, presenting `cert` when given.
    fn client(
        &self,
        cert: Option<&(String, String)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut cfg = match cert {
            None => b.with_no_client_auth(),
            Some((c, k)) => {
                let chain = CertificateDer::pem_slice_iter(c.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

const ALL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Starts the exporter expecting it to serve HTTPS, like `Exporter::start` does for HTTP.
fn start_tls(args: &[&str]) -> Exporter {
    let mut child = Command::new(BIN)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.split("listening on https://").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
            if let Ok(mut l) = log2.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a.parse().expect("address"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("exporter did not start on https: {}", log.lock().unwrap());
        }
    };
    Exporter { child, addr, log }
}

/// One GET over TLS (Connection: close). An error when the handshake or the exchange fails.
fn https_get_once(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn =
        rustls::ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap())
            .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes())?;
    tls.flush()?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// Asserts that a GET over TLS failed, with `why` (a rustls error or alert) in the error.
fn refused(r: std::io::Result<HttpResponse>, why: &str) {
    match r {
        Ok(r) => panic!("expected a TLS failure ({why}), got HTTP {}", r.status),
        Err(e) => assert!(format!("{e:?}").contains(why), "expected {why}, got {e:?}"),
    }
}

/// GET over TLS, waiting (up to 10 s) past the 503 before the first sweep.
fn https_get(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = https_get_once(addr, client, path, headers)
            .unwrap_or_else(|e| panic!("GET https://{addr}{path}: {e}"));
        if r.status != 503 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn basic_auth_guards_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
            hash(PASSWORD),
            hash("other")
        ),
    )
    .unwrap();
    // Through the TOML file's key this time; the flag is the same setting.
    let toml = dir.path().join("c.toml");
    std::fs::write(
        &toml,
        format!("web.config-file = {:?}\n", web.to_str().unwrap()),
    )
    .unwrap();
    let exp = Exporter::start(
        BIN,
        &[&QUIET[..], &["--config.file", toml.to_str().unwrap()]].concat(),
    );
    let good = basic("alice", PASSWORD);
    for path in ["/metrics", "/healthz", "/api/v1/containers", "/", "/nope"] {
        let r = exp.get(path);
        assert_eq!(r.status, 401, "{path} without credentials");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"collector-exporter\""),
            "{path}"
        );
    }
    let r = exp.get_with("/metrics", &[("Authorization", &good)]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("collector_sweeps_total"));
    assert_eq!(
        exp.get_with("/healthz", &[("Authorization", &good)]).status,
        200
    );
    assert_eq!(
        exp.get_with("/nope", &[("Authorization", &good)]).status,
        404
    );
    assert_eq!(
        exp.get_with("/metrics", &[("Authorization", &basic("bob", "other"))])
            .status,
        200
    );
    for (what, header) in [
        ("wrong password", basic("alice", "s3cret-pa55")),
        ("other user's password", basic("bob", PASSWORD)),
        ("unknown user", basic("carol", PASSWORD)),
        ("user name case", basic("Alice", PASSWORD)),
        ("empty password", basic("alice", "")),
        ("not basic", format!("Bearer {PASSWORD}")),
        ("not base64", "Basic ***".to_string()),
    ] {
        let r = exp.get_with("/metrics", &[("Authorization", &header)]);
        assert_eq!(r.status, 401, "{what}");
    }
    // Repeated scrapes with the right password are cheap (cached) and still right.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            exp.get_with("/healthz", &[("Authorization", &good)]).status,
            200
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = exp.log.lock().unwrap().clone();
    assert!(!log.contains(PASSWORD), "password in the log: {log}");
    assert!(log.contains("basic auth 2 user(s)"), "{log}");
}

#[test]
fn tls_from_a_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // Relative names: taken from the web config's directory, not the working directory.
    let web =
        pki.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let exp = start_tls(&[&QUIET[..], &["--web.config.file", &web]].concat());
    let client = pki.client(None, ALL_VERSIONS);
    let r = https_get(exp.addr, &client, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("collector_sweeps_total"));
    assert_eq!(https_get(exp.addr, &client, "/healthz", &[]).status, 200);
    // TLS 1.2 is accepted by default.
    let tls12 = pki.client(None, &[&rustls::version::TLS12]);
    assert_eq!(https_get(exp.addr, &tls12, "/healthz", &[]).status, 200);
    // Plain HTTP to the TLS port gets no metrics, only a 400 saying why.
    let r = http_get(exp.addr, "/metrics", &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("HTTPS"), "{}", r.text());
    // A client that does not trust the test CA refuses the server.
    let stranger = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    };
    refused(
        https_get_once(exp.addr, &stranger, "/healthz", &[]),
        "UnknownIssuer",
    );
    // Still serving after all that.
    assert_eq!(https_get(exp.addr, &client, "/healthz", &[]).status, 200);
}

#[test]
fn tls13_only_refuses_a_tls12_client() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let web = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
    );
    let exp = start_tls(&[&QUIET[..], &["--web.config.file", &web]].concat());
    let tls12 = pki.client(None, &[&rustls::version::TLS12]);
    refused(
        https_get_once(exp.addr, &tls12, "/healthz", &[]),
        "ProtocolVersion",
    );
    let tls13 = pki.client(None, &[&rustls::version::TLS13]);
    assert_eq!(https_get(exp.addr, &tls13, "/healthz", &[]).status, 200);
}

#[test]
fn client_certificates_required_and_basic_auth_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let web = pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
         basic_auth_users:\n  alice: '{}'\n",
        hash(PASSWORD)
    ));
    let exp = start_tls(&[&QUIET[..], &["--web.config.file", &web]].concat());
    let good = basic("alice", PASSWORD);
    let auth = [("Authorization", good.as_str())];
    for versions in [ALL_VERSIONS, &[&rustls::version::TLS12]] {
        let without = pki.client(None, versions);
        refused(
            https_get_once(exp.addr, &without, "/healthz", &auth),
            "CertificateRequired",
        );
        let rogue = pki.client(Some(&pki.rogue_client), versions);
        refused(
            https_get_once(exp.addr, &rogue, "/healthz", &auth),
            "UnknownCA",
        );
    }
    let with = pki.client(Some(&pki.client), ALL_VERSIONS);
    let r = https_get(exp.addr, &with, "/metrics", &auth);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("collector_sweeps_total"));
    // The certificate alone is not enough: basic auth still applies.
    let r = https_get(exp.addr, &with, "/metrics", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"collector-exporter\"")
    );
}

/// Runs the exporter to its exit (killing it after 20 s: a bad file must stop it at once).
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(QUIET)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: still running; the bad web config was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn bad_web_config_files_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    std::fs::write(dir.path().join("client.key"), &pki.client.1).unwrap();
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(String, &str)> = vec![
        ("basic_auth_user:\n  alice: x\n".into(), "basic_auth_user"),
        (format!("{tls}  cert_fil: x\n"), "cert_fil"),
        (
            "basic_auth_users:\n  alice: hunter2-plaintext\n".into(),
            "basic_auth_users.alice",
        ),
        (
            format!(
                "basic_auth_users:\n  alice: '{}'\n",
                hash("x").replacen("$2b$04$", "$2b$99$", 1)
            ),
            "basic_auth_users.alice",
        ),
        (
            "tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: server.key\n"
                .into(),
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n".into(),
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n".into(),
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  cert_file: ca.crt\n  key_file: ca.crt\n".into(),
            "tls_server_config.key_file",
        ),
        (
            format!("{tls}  client_ca_file: ca.crt\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file",
        ),
        (
            format!("{tls}  client_auth_type: Sometimes\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            format!("{tls}  min_version: TLS10\n"),
            "tls_server_config.min_version",
        ),
        (
            format!("{tls}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            "tls_server_config.cipher_suites",
        ),
        ("tls_server_config: [\n".into(), "web.config.file"),
    ];
    for (yaml, key) in &cases {
        let web = pki.web_config(yaml);
        let (code, err) = run_to_exit(&["--web.config.file", &web]);
        assert_eq!(code, Some(2), "{yaml}\n{err}");
        assert!(err.contains(key), "{yaml}: {err}");
        assert!(err.contains("web.config.file"), "{yaml}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{yaml}: {err}");
        assert!(!err.contains("hunter2"), "secret echoed: {err}");
    }
    let (code, err) = run_to_exit(&["--web.config.file", "/nonexistent/web.yml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/web.yml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
