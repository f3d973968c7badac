//! What the HTTP sinks share: secrets that never print, the host name, and building a client
//! that trusts an extra CA.

use std::fmt;

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// This machine's name, for the `host` tag and `host.name`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// How a sink's client checks the server and shows itself over https.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of an extra CA to trust besides the built-in roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM files of a client certificate and its key, for servers that ask for one.
    pub cert_file: Option<std::path::PathBuf>,
    /// The PEM key of `cert_file`; both or neither must be set.
    pub key_file: Option<std::path::PathBuf>,
    /// Accept any server certificate (a test set-up; never in production).
    pub insecure_skip_verify: bool,
}

/// A client with a request timeout, trusting `ca_file` (PEM) besides the built-in roots.
#[cfg(any(
    feature = "influxdb",
    feature = "elasticsearch",
    feature = "remote_write"
))]
pub fn client(
    timeout: std::time::Duration,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, crate::Error> {
    client_tls(
        timeout,
        &Tls {
            ca_file: ca_file.map(std::path::Path::to_path_buf),
            ..Tls::default()
        },
    )
}

/// A client with a request timeout and these TLS settings.
#[cfg(any(
    feature = "influxdb",
    feature = "elasticsearch",
    feature = "remote_write"
))]
pub fn client_tls(
    timeout: std::time::Duration,
    tls: &Tls,
) -> Result<reqwest::Client, crate::Error> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| crate::Error::ReadSetting {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = &tls.ca_file {
        let cert = reqwest::Certificate::from_pem(&read("CA file", path)?)
            .map_err(|e| crate::Error::Client(format!("CA file {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    match (&tls.cert_file, &tls.key_file) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let mut pem = read("client certificate", cert)?;
            pem.push(b'\n');
            pem.extend(read("client key", key)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                crate::Error::Client(format!(
                    "client certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(id);
        }
        _ => {
            return Err(crate::Error::Client(
                "a client certificate needs both its certificate and its key file".into(),
            ))
        }
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| crate::Error::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_secrets() {
        // The engine the sinks use for `Authorization`: standard alphabet, padded.
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        assert_eq!(STANDARD.encode("user:pass"), "dXNlcjpwYXNz");
        assert_eq!(STANDARD.encode("a"), "YQ==");
        assert_eq!(STANDARD.encode("ab"), "YWI=");
        assert_eq!(STANDARD.encode(""), "");
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "\"***\"");
    }
}
