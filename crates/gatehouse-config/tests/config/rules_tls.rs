//! `[listener.tls]`: certificate pairs, versions, HSTS, client CA. Certificates are generated
//! here (rcgen) into a temporary directory; none are committed.

// The certificate helpers below are test code outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use gatehouse_config::model::TlsVersion;
use rcgen::{CertificateParams, KeyPair};

use crate::{error, errors, ok, parse};

/// A temporary directory with generated certificate files.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        Certs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `stem.pem` + `stem.key` for `names`, after `edit` adjusts the parameters.
    fn pair(&self, stem: &str, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        edit(&mut params);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(self.path(&format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    /// A listener with `[listener.tls]` holding `body` (`{d}` is the directory).
    fn config(&self, body: &str) -> String {
        let body = body.replace("{d}", &self.dir.path().display().to_string());
        format!("[[listener]]\naddress = \"127.0.0.1:8443\"\n[listener.tls]\n{body}")
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn certificates_in_order_with_their_names() {
    let certs = Certs::new();
    certs.pair("a", &["a.test", "*.a.test"], |_| {});
    certs.pair("b", &["B.test"], |_| {});
    let config = ok(&certs.config(
        "certificates = [\n  { cert = \"{d}/a.pem\", key = \"{d}/a.key\" },\n  { cert = \"{d}/b.pem\", key = \"{d}/b.key\" },\n]\n",
    ));
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].names, ["a.test", "*.a.test"]);
    assert_eq!(tls.certificates[1].names, ["b.test"]);
    assert_eq!(tls.certificates[1].key_path, certs.path("b.key"));
    assert_eq!(tls.min_version, TlsVersion::Tls12);
    assert_eq!(tls.hsts, None);
    assert_eq!(tls.client_ca, None);
    assert!(config.warnings.is_empty());
}

#[test]
fn array_of_tables_syntax_and_every_option() {
    let certs = Certs::new();
    certs.pair("a", &["a.test"], |_| {});
    certs.pair("ca", &["ca.test"], |params| {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    });
    let config = ok(&certs.config(
        "min_version = \"1.3\"\nhsts = \"max-age=31536000; includeSubDomains\"\nclient_ca = \"{d}/ca.pem\"\n[[listener.tls.certificates]]\ncert = \"{d}/a.pem\"\nkey = \"{d}/a.key\"\n",
    ));
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(
        tls.hsts.as_deref(),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(tls.client_ca.as_ref().unwrap().certs.len(), 1);

    // The number people type works too.
    let config = ok(&certs.config(
        "min_version = 1.3\ncertificates = [{ cert = \"{d}/a.pem\", key = \"{d}/a.key\" }]\n",
    ));
    assert_eq!(
        config.listeners[0].tls.as_ref().unwrap().min_version,
        TlsVersion::Tls13
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let certs = Certs::new();
    certs.pair("a", &["a.test"], |_| {});
    let text = certs.config("certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n");
    let config = gatehouse_config::parse(&certs.path("gatehouse.toml"), &text).unwrap();
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates[0].cert_path, certs.path("a.pem"));
}

#[test]
fn a_key_that_does_not_match_names_the_key_file() {
    let certs = Certs::new();
    certs.pair("a", &["a.test"], |_| {});
    certs.pair("b", &["b.test"], |_| {});
    let text = certs.config(
        "certificates = [\n  { cert = \"{d}/a.pem\", key = \"{d}/a.key\" },\n  { cert = \"{d}/b.pem\", key = \"{d}/a.key\" },\n]\n",
    );
    assert_eq!(
        error(&text),
        format!(
            "gatehouse.toml:6:37: listener[0].tls.certificates[1].key: {}: private key does not match the certificate in {}",
            show(&certs.path("a.key")),
            show(&certs.path("b.pem"))
        )
    );
}

#[test]
fn missing_unreadable_and_malformed_files() {
    let certs = Certs::new();
    certs.pair("a", &["a.test"], |_| {});
    std::fs::write(certs.path("junk.pem"), "hello\n").unwrap();
    let text = certs.config(
        "certificates = [\n  { cert = \"{d}/nope.pem\", key = \"{d}/a.key\" },\n  { cert = \"{d}/junk.pem\", key = \"{d}/a.key\" },\n  { cert = \"{d}/a.pem\", key = \"{d}/a.pem\" },\n  { key = \"{d}/a.key\" },\n]\n",
    );
    let all = errors(&text);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all[0].starts_with(&format!(
            "gatehouse.toml:5:5: listener[0].tls.certificates[0].cert: {}: cannot read: ",
            show(&certs.path("nope.pem"))
        )),
        "{}",
        all[0]
    );
    assert_eq!(
        all[1],
        format!(
            "gatehouse.toml:6:5: listener[0].tls.certificates[1].cert: {}: no certificate found (expected a PEM \"CERTIFICATE\" block)",
            show(&certs.path("junk.pem"))
        )
    );
    assert!(
        all[2].starts_with(&format!(
            "gatehouse.toml:7:37: listener[0].tls.certificates[2].key: {}: no private key found",
            show(&certs.path("a.pem"))
        )),
        "{}",
        all[2]
    );
    assert_eq!(
        all[3],
        "gatehouse.toml:8:3: listener[0].tls.certificates[3].cert: required key is missing"
    );
}

#[test]
fn a_certificate_not_valid_yet_is_an_error() {
    let certs = Certs::new();
    certs.pair("future", &["a.test"], |params| {
        params.not_before = rcgen::date_time_ymd(2999, 1, 1);
        params.not_after = rcgen::date_time_ymd(3000, 1, 1);
    });
    let text =
        certs.config("certificates = [{ cert = \"{d}/future.pem\", key = \"{d}/future.key\" }]\n");
    assert_eq!(
        error(&text),
        format!(
            "gatehouse.toml:4:19: listener[0].tls.certificates[0].cert: {}: certificate is not valid before 2999-01-01T00:00:00Z",
            show(&certs.path("future.pem"))
        )
    );
}

#[test]
fn an_expired_certificate_is_served_with_a_located_warning() {
    let certs = Certs::new();
    certs.pair("old", &["a.test"], |params| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let config =
        ok(&certs.config("certificates = [{ cert = \"{d}/old.pem\", key = \"{d}/old.key\" }]\n"));
    assert_eq!(
        config.listeners[0].tls.as_ref().unwrap().certificates.len(),
        1
    );
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [format!(
            "gatehouse.toml:4:19: listener[0].tls.certificates[0].cert: {}: certificate expired on 2001-01-01T00:00:00Z; serving it anyway, but clients will refuse it until it is renewed",
            show(&certs.path("old.pem"))
        )]
    );
}

#[test]
fn bad_options() {
    let certs = Certs::new();
    certs.pair("a", &["a.test"], |_| {});
    let pair = "certificates = [{ cert = \"{d}/a.pem\", key = \"{d}/a.key\" }]\n";
    assert_eq!(
        error(&certs.config(&format!("{pair}min_version = \"1.1\"\n"))),
        "gatehouse.toml:5:1: listener[0].tls.min_version: unsupported TLS version \"1.1\" (expected \"1.2\" or \"1.3\")"
    );
    assert_eq!(
        error(&certs.config(&format!("{pair}hsts = \"includeSubDomains\"\n"))),
        "gatehouse.toml:5:1: listener[0].tls.hsts: \"includeSubDomains\" has no max-age directive (e.g. \"max-age=31536000; includeSubDomains\")"
    );
    assert!(
        error(&certs.config(&format!("{pair}client_ca = \"{{d}}/none.pem\"\n")))
            .starts_with("gatehouse.toml:5:1: listener[0].tls.client_ca: ")
    );
    assert_eq!(
        error(&certs.config("certificates = []\n")),
        "gatehouse.toml:4:1: listener[0].tls.certificates: at least one certificate is required, e.g. certificates = [{ cert = \"site.pem\", key = \"site.key\" }]"
    );
    // No `certificates` key at all: the `[listener.tls]` header is pointed at.
    assert!(error(&certs.config("")).starts_with(
        "gatehouse.toml:3:11: listener[0].tls.certificates: at least one certificate"
    ));
    assert!(parse(&certs.config(&format!("{pair}certificate = 1\n"))).is_err());
}
