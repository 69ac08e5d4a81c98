//! `[listener.tls]`: certificate pairs (read and checked by `certs`), the minimum protocol
//! version, the HSTS value and the client CA. An expired certificate is a warning, not an error
//! (see `certs` for why).

use std::path::PathBuf;

use crate::certs::{self, PairError};
use crate::file;
use crate::location::KeyPath;
use crate::model::{Certificate, ClientCa, Tls, TlsVersion};

use super::Validator;

impl Validator<'_> {
    pub(super) fn tls(&mut self, path: &KeyPath, tls: file::Tls) -> Tls {
        let certificates_path = path.key("certificates");
        let pairs = tls.certificates.unwrap_or_default();
        if pairs.is_empty() {
            self.problem(
                &certificates_path,
                "at least one certificate is required, e.g. certificates = [{ cert = \"site.pem\", key = \"site.key\" }]",
            );
        }
        let mut certificates = Vec::new();
        for (i, pair) in pairs.into_iter().enumerate() {
            if let Some(certificate) = self.certificate(&certificates_path.index(i), pair) {
                certificates.push(certificate);
            }
        }

        let min_version = match tls.min_version.as_ref().map(|v| v.0.as_str()) {
            None | Some("1.2") => TlsVersion::Tls12,
            Some("1.3") => TlsVersion::Tls13,
            Some(other) => {
                self.problem(
                    &path.key("min_version"),
                    format!("unsupported TLS version {other:?} (expected \"1.2\" or \"1.3\")"),
                );
                TlsVersion::Tls12
            }
        };

        let hsts = tls.hsts.filter(|value| {
            let result = check_hsts(value);
            if let Err(message) = &result {
                self.problem(&path.key("hsts"), message.clone());
            }
            result.is_ok()
        });

        let client_ca = tls.client_ca.and_then(|written| {
            let resolved = self.resolve(&written);
            match certs::load_ca(&resolved) {
                Ok(certs) => Some(ClientCa {
                    path: resolved,
                    certs,
                }),
                Err(reason) => {
                    self.problem(
                        &path.key("client_ca"),
                        format!("{}: {reason}", resolved.display()),
                    );
                    None
                }
            }
        });

        // A pair that did not load was reported; the model is not returned then.
        Tls {
            certificates,
            min_version,
            hsts,
            client_ca,
        }
    }

    fn certificate(&mut self, path: &KeyPath, pair: file::CertificatePair) -> Option<Certificate> {
        let cert = self.required_path(&path.key("cert"), pair.cert);
        let key = self.required_path(&path.key("key"), pair.key);
        let (cert, key) = (cert?, key?);
        match certs::load_pair(&cert, &key, self.machine.now) {
            Ok(certificate) => {
                if certificate.not_after < self.machine.now {
                    self.warning(
                        &path.key("cert"),
                        format!(
                            "{}: certificate expired on {}; serving it anyway, but clients will refuse it until it is renewed",
                            cert.display(),
                            certs::date(certificate.not_after)
                        ),
                    );
                }
                Some(certificate)
            }
            Err(error) => {
                let key_name = match error {
                    PairError::Cert { .. } => "cert",
                    PairError::Key { .. } => "key",
                };
                self.problem(&path.key(key_name), error.to_string());
                None
            }
        }
    }

    /// A required path key, resolved against the config file's directory.
    fn required_path(&mut self, path: &KeyPath, value: Option<PathBuf>) -> Option<PathBuf> {
        match value {
            None => {
                self.problem(path, "required key is missing");
                None
            }
            Some(written) if written.as_os_str().is_empty() => {
                self.problem(path, "must not be empty");
                None
            }
            Some(written) => Some(self.resolve(&written)),
        }
    }
}

/// `hsts`: a valid header value that carries the `max-age` directive RFC 6797 requires.
fn check_hsts(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty (leave the key out for no header)".to_owned());
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(format!("{value:?} is not a valid header value"));
    }
    let has_max_age = value.split(';').any(|directive| {
        directive
            .trim()
            .to_ascii_lowercase()
            .strip_prefix("max-age")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    if !has_max_age {
        return Err(format!(
            "{value:?} has no max-age directive (e.g. \"max-age=31536000; includeSubDomains\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_values() {
        for ok in [
            "max-age=31536000",
            "max-age=63072000; includeSubDomains; preload",
            "includeSubDomains; Max-Age = 0",
        ] {
            assert_eq!(check_hsts(ok), Ok(()), "{ok}");
        }
        for bad in ["", "includeSubDomains", "max-age=1\n", "maxage=5"] {
            assert!(check_hsts(bad).is_err(), "{bad}");
        }
    }
}
