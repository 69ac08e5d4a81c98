//! Reading and checking TLS certificate files: a certificate chain with its private key, and the
//! CA bundle for client certificates. Validation uses these for `[listener.tls]`, and the proxy
//! uses the same functions when it re-reads rotated files, so a pair is accepted by the same rules
//! at start, on reload and on rotation.
//!
//! A pair is refused when a file cannot be read, holds no PEM block of the right kind or a
//! malformed one, when the key type is not supported, when the key does not belong to the leaf
//! certificate, or when the leaf is not valid yet. An expired leaf is *accepted*: refusing it would
//! turn a missed renewal into an outage of every client, including those that ignore the date.
//! Callers compare `not_after` with the clock and warn.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::model::{Certificate, PrivateKey};

/// Why a certificate pair was refused, and which of its two files is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("{}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
}

/// Reads `cert` (a PEM chain, leaf first) and `key` (a PEM private key: PKCS#8, PKCS#1 or SEC1)
/// and checks them against each other and against `now`.
pub fn load_pair(cert: &Path, key: &Path, now: SystemTime) -> Result<Certificate, PairError> {
    let cert_error = |reason: String| PairError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let key_error = |reason: String| PairError::Key {
        path: key.to_path_buf(),
        reason,
    };

    let chain = read_certificates(cert).map_err(cert_error)?;
    let leaf = Leaf::parse(&chain).map_err(cert_error)?;
    if leaf.not_before > now {
        return Err(cert_error(format!(
            "certificate is not valid before {}",
            date(leaf.not_before)
        )));
    }

    let pem = std::fs::read(key).map_err(|error| key_error(format!("cannot read: {error}")))?;
    let private_key = PrivateKeyDer::from_pem_slice(&pem).map_err(|error| {
        key_error(match error {
            pem::Error::NoItemsFound => "no private key found (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)".to_owned(),
            other => format!("malformed PEM: {other}"),
        })
    })?;
    let signer = any_supported_type(&private_key)
        .map_err(|error| key_error(format!("unsupported private key: {error}")))?;
    match CertifiedKey::new(chain.clone(), signer).keys_match() {
        // `Unknown`: the key cannot tell its public half; the handshake will show.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(key_error(format!(
                "private key does not match the certificate in {}",
                cert.display()
            )))
        }
        Err(other) => return Err(cert_error(format!("unusable certificate: {other}"))),
    }

    Ok(Certificate {
        cert_path: cert.to_path_buf(),
        key_path: key.to_path_buf(),
        chain,
        key: PrivateKey(private_key),
        names: leaf.names,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
    })
}

/// Reads a CA bundle for client-certificate verification: at least one certificate, each usable
/// as a trust anchor. The error is the reason, without the path.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = read_certificates(path)?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|error| format!("certificate {} is not a usable CA: {error}", i + 1))?;
    }
    Ok(certs)
}

/// `date(t)` as RFC 3339 in UTC, for messages.
pub fn date(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Every `CERTIFICATE` block of a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|error| format!("cannot read: {error}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("malformed PEM: {error}"))?;
    if certs.is_empty() {
        return Err("no certificate found (expected a PEM \"CERTIFICATE\" block)".to_owned());
    }
    Ok(certs)
}

/// What we need from the leaf certificate.
struct Leaf {
    names: Vec<String>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Leaf {
    /// Parses every certificate of the chain (so that a damaged intermediate is caught here, not
    /// by a client) and reads names and dates from the first.
    fn parse(chain: &[CertificateDer<'_>]) -> Result<Leaf, String> {
        let mut leaf = None;
        for (i, der) in chain.iter().enumerate() {
            let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|error| {
                if i == 0 {
                    format!("malformed certificate: {error}")
                } else {
                    format!("malformed certificate {} in the chain: {error}", i + 1)
                }
            })?;
            if i == 0 {
                leaf = Some(Leaf {
                    names: names(&cert),
                    not_before: unix_time(cert.validity().not_before.timestamp()),
                    not_after: unix_time(cert.validity().not_after.timestamp()),
                });
            }
        }
        leaf.ok_or_else(|| "no certificate found".to_owned())
    }
}

/// DNS subjectAltNames, or the subject's common name when there are none (as browsers once did
/// and OpenSSL still does), lower-case.
fn names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                let dns = dns.to_ascii_lowercase();
                if !names.contains(&dns) {
                    names.push(dns);
                }
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    names
}

fn unix_time(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{CertificateParams, KeyPair};

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        }

        /// A self-signed pair for `names`, written as `stem.pem` and `stem.key`.
        fn pair(
            &self,
            stem: &str,
            names: &[&str],
            edit: impl FnOnce(&mut CertificateParams),
        ) -> (PathBuf, PathBuf) {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            edit(&mut params);
            let cert = params.self_signed(&key).unwrap();
            (
                self.write(&format!("{stem}.pem"), &cert.pem()),
                self.write(&format!("{stem}.key"), &key.serialize_pem()),
            )
        }
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn loads_a_matching_pair_with_its_names() {
        let files = Files::new();
        let (cert, key) = files.pair("site", &["Example.com", "*.example.com"], |_| {});
        let loaded = load_pair(&cert, &key, now()).unwrap();
        assert_eq!(loaded.names, ["example.com", "*.example.com"]);
        assert_eq!(loaded.chain.len(), 1);
        assert!(loaded.not_after > now());
        assert_eq!(loaded.name(), "example.com");
    }

    #[test]
    fn a_key_from_another_pair_is_refused_naming_the_key() {
        let files = Files::new();
        let (cert, _) = files.pair("a", &["a.test"], |_| {});
        let (_, other_key) = files.pair("b", &["b.test"], |_| {});
        let error = load_pair(&cert, &other_key, now()).unwrap_err();
        assert!(matches!(&error, PairError::Key { path, .. } if path == &other_key));
        assert!(
            error.to_string().contains("does not match the certificate"),
            "{error}"
        );
    }

    #[test]
    fn unreadable_empty_and_malformed_files_are_refused() {
        let files = Files::new();
        let (cert, key) = files.pair("a", &["a.test"], |_| {});
        let missing = files.dir.path().join("missing.pem");
        let error = load_pair(&missing, &key, now()).unwrap_err();
        assert!(error.to_string().contains("cannot read"), "{error}");

        let empty = files.write("empty.pem", "just text\n");
        let error = load_pair(&empty, &key, now()).unwrap_err();
        assert!(
            error.to_string().contains("no certificate found"),
            "{error}"
        );

        let broken = files.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let error = load_pair(&broken, &key, now()).unwrap_err();
        assert!(matches!(error, PairError::Cert { .. }), "{error}");

        // A key file holding a certificate only.
        let error = load_pair(&cert, &cert, now()).unwrap_err();
        assert!(matches!(&error, PairError::Key { .. }), "{error}");
        assert!(
            error.to_string().contains("no private key found"),
            "{error}"
        );
    }

    #[test]
    fn not_yet_valid_is_refused_and_expired_is_accepted() {
        let files = Files::new();
        let (future, future_key) = files.pair("future", &["a.test"], |params| {
            params.not_before = rcgen::date_time_ymd(2999, 1, 1);
            params.not_after = rcgen::date_time_ymd(3000, 1, 1);
        });
        let error = load_pair(&future, &future_key, now()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not valid before 2999-01-01T00:00:00Z"),
            "{error}"
        );

        let (old, old_key) = files.pair("old", &["a.test"], |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        let loaded = load_pair(&old, &old_key, now()).unwrap();
        assert_eq!(date(loaded.not_after), "2001-01-01T00:00:00Z");
    }

    #[test]
    fn common_name_is_the_name_when_there_is_no_san() {
        let files = Files::new();
        let (cert, key) = files.pair("cn", &[], |params| {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Legacy.Example");
        });
        assert_eq!(
            load_pair(&cert, &key, now()).unwrap().names,
            ["legacy.example"]
        );
    }

    #[test]
    fn ca_bundles() {
        let files = Files::new();
        let (cert, _) = files.pair("ca", &["ca.test"], |params| {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        });
        assert_eq!(load_ca(&cert).unwrap().len(), 1);
        let empty = files.write("empty.pem", "");
        assert!(load_ca(&empty)
            .unwrap_err()
            .contains("no certificate found"));
    }
}
