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

/// A client with a request timeout, trusting `ca_file` (PEM) besides the built-in roots.
#[cfg(any(feature = "influxdb", feature = "elasticsearch"))]
pub fn client(
    timeout: std::time::Duration,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, crate::Error> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| crate::Error::ReadSetting {
            what: "CA file",
            path: path.to_path_buf(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| crate::Error::Client(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
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
