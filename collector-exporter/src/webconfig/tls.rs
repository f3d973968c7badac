//! `tls_server_config`: certificates, keys, client CAs, versions, suites and curves, into a
//! rustls server configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::file::{nonempty, RawTls};
use super::{bad, ClientAuth};
use crate::error::Result;

const K_TLS: &str = "tls_server_config";

fn key_of(field: &str) -> String {
    format!("{K_TLS}.{field}")
}

/// PEM text from exactly one of `inline` and `file`, or `None` when neither is given.
fn pem_source(
    inline: Option<String>,
    file: Option<PathBuf>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
) -> Result<Option<(Vec<u8>, String)>> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err(bad(
            &key_of(file_key),
            format!("give only one of {file_key} and {inline_key}"),
        )),
        (Some(text), None) => Ok(Some((text.into_bytes(), key_of(inline_key)))),
        (None, Some(p)) => {
            let p = dir.join(p);
            let bytes = std::fs::read(&p).map_err(|e| {
                bad(
                    &key_of(file_key),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Ok(Some((bytes, key_of(file_key))))
        }
        (None, None) => Ok(None),
    }
}

/// Why PEM did not parse, without echoing any of the file (a key file's lines are secret).
fn pem_reason(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => format!("no {what} found in the PEM"),
        E::MissingSectionEnd { .. } => "malformed PEM: a section has no END line".into(),
        E::IllegalSectionStart { .. } => "malformed PEM: bad BEGIN line".into(),
        E::Base64Decode(_) => "malformed PEM: bad base64".into(),
        E::SectionTooLarge => "malformed PEM: section too large".into(),
        _ => "malformed PEM".into(),
    }
}

fn certificates(pem: &[u8], key: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, pem_reason(&e, what)))?;
    if certs.is_empty() {
        return Err(bad(key, format!("no {what} (BEGIN CERTIFICATE) found")));
    }
    Ok(certs)
}

fn version(v: Option<String>, key: &str) -> Result<Option<u8>> {
    match nonempty(v).as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(2)),
        Some("TLS13") => Ok(Some(3)),
        Some(v @ ("TLS10" | "TLS11")) => Err(bad(
            &key_of(key),
            format!("{v} is not supported (too old); use TLS12 or TLS13"),
        )),
        Some(v) => Err(bad(
            &key_of(key),
            format!("{v:?} is not a TLS version (TLS12 or TLS13)"),
        )),
    }
}

/// The TLS 1.3 suites under Go's names: always on, as in Go, so naming one is a no-op.
const GO_TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

pub(super) fn config(t: RawTls, dir: &Path) -> Result<(Option<Arc<ServerConfig>>, ClientAuth)> {
    let auth_type = nonempty(t.client_auth_type);
    let enabled = [&t.cert, &t.key, &t.client_ca]
        .iter()
        .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        || [&t.cert_file, &t.key_file, &t.client_ca_file]
            .iter()
            .any(|v| v.as_ref().is_some_and(|p| !p.as_os_str().is_empty()))
        || auth_type.is_some();
    if !enabled {
        // The exporter-toolkit serves plain HTTP for a TLS section without any of these.
        return Ok((None, ClientAuth::None));
    }
    if t.client_allowed_sans.is_some_and(|s| !s.is_empty()) {
        return Err(bad(
            &key_of("client_allowed_sans"),
            "not supported by this exporter; issue client certificates from a dedicated CA instead",
        ));
    }
    let (cert_pem, cert_key) = pem_source(t.cert, t.cert_file, "cert", "cert_file", dir)?
        .ok_or_else(|| bad(&key_of("cert_file"), "missing one of cert or cert_file"))?;
    let (key_pem, key_key) = pem_source(t.key, t.key_file, "key", "key_file", dir)?
        .ok_or_else(|| bad(&key_of("key_file"), "missing one of key or key_file"))?;
    let ca = pem_source(
        t.client_ca,
        t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
    )?;

    let certs = certificates(&cert_pem, &cert_key, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        bad(
            &key_key,
            pem_reason(&e, "private key (PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;

    let client_auth = match auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerify,
        Some(v @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            return Err(bad(
                &key_of("client_auth_type"),
                format!(
                    "{v} (client certificates not checked against a CA) is not supported; \
                     use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file"
                ),
            ))
        }
        Some(v) => {
            return Err(bad(
                &key_of("client_auth_type"),
                format!(
                    "{v:?} is not one of NoClientCert, VerifyClientCertIfGiven, \
                     RequireAndVerifyClientCert"
                ),
            ))
        }
    };
    let roots = match (client_auth, ca) {
        (ClientAuth::None, Some((_, k))) => {
            return Err(bad(
                &k,
                "client CAs are configured but client_auth_type is NoClientCert; set \
                 client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven",
            ))
        }
        (ClientAuth::None, None) => None,
        (_, None) => {
            return Err(bad(
                &key_of("client_ca_file"),
                "client_auth_type verifies client certificates, so it needs client_ca_file \
                 (or client_ca)",
            ))
        }
        (_, Some((pem, k))) => {
            let mut roots = RootCertStore::empty();
            let (added, _) =
                roots.add_parsable_certificates(certificates(&pem, &k, "CA certificate")?);
            if added == 0 {
                return Err(bad(
                    &k,
                    "none of its certificates is a usable CA certificate",
                ));
            }
            Some(roots)
        }
    };

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.filter(|n| !n.is_empty()) {
        let mut keep = Vec::new();
        for name in &names {
            if GO_TLS13_SUITES.contains(&name.as_str()) {
                continue;
            }
            match provider.cipher_suites.iter().find(|s| {
                s.suite().as_str() == Some(name.as_str()) && s.version() == &rustls::version::TLS12
            }) {
                Some(s) => keep.push(*s),
                None => {
                    let known: Vec<_> = provider
                        .cipher_suites
                        .iter()
                        .filter(|s| s.version() == &rustls::version::TLS12)
                        .filter_map(|s| s.suite().as_str())
                        .collect();
                    return Err(bad(
                        &key_of("cipher_suites"),
                        format!(
                            "{name:?} is not supported; the TLS 1.2 suites are {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        // TLS 1.3 suites are not configurable, as in Go; TLS 1.2 ones in the order given.
        let tls13 = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied();
        provider.cipher_suites = tls13.chain(keep).collect();
    }
    if let Some(names) = t.curve_preferences.filter(|n| !n.is_empty()) {
        let mut groups = Vec::new();
        for name in &names {
            let want = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                other => {
                    return Err(bad(
                        &key_of("curve_preferences"),
                        format!("{other:?} is not supported (X25519, CurveP256, CurveP384)"),
                    ))
                }
            };
            if let Some(g) = provider.kx_groups.iter().find(|g| g.name() == want) {
                groups.push(*g);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let min = version(t.min_version, "min_version")?.unwrap_or(2);
    let max = version(t.max_version, "max_version")?.unwrap_or(3);
    if min > max {
        return Err(bad(&key_of("min_version"), "is above max_version"));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(3, &rustls::version::TLS13), (2, &rustls::version::TLS12)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            bad(
                K_TLS,
                format!("no usable cipher suite for the TLS versions: {e}"),
            )
        })?;
    let builder = match roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if client_auth == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| bad(&key_of("client_ca_file"), e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            &key_key,
            format!("does not go with the certificate in {cert_key}: {e}"),
        )
    })?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Some(Arc::new(config)), client_auth))
}
