//! Handshakes over in-memory streams against certificates generated here: SNI choice, ALPN,
//! versions, failures counted, and rotation (direct and through the directory watch).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gatehouse_config::certs;
use gatehouse_config::model::{self, TlsVersion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::{Alpn, Tls};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A test CA that issues leaf certificates into a directory.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gatehouse test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a leaf for `names` and writes it as `stem.pem` + `stem.key`.
    fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (cert_path, key_path) = (
            self.path(&format!("{stem}.pem")),
            self.path(&format!("{stem}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// A client trusting this CA. It does not resume sessions (a resumed session shows the
    /// certificate of the first handshake), except when `resume` is set.
    fn client(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        self.client_resuming(alpn, versions, false)
    }

    fn client_resuming(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
        resume: bool,
    ) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        TlsConnector::from(Arc::new(config))
    }
}

fn settings(pairs: &[(PathBuf, PathBuf)], min_version: TlsVersion) -> model::Tls {
    model::Tls {
        certificates: pairs
            .iter()
            .map(|(cert, key)| certs::load_pair(cert, key, SystemTime::now()).unwrap())
            .collect(),
        min_version,
        hsts: Some("max-age=60".into()),
        client_ca: None,
    }
}

/// One handshake: the leaf the client got (its DER) and the ALPN outcome, or the client's error.
async fn handshake(
    tls: &Arc<Tls>,
    connector: &TlsConnector,
    sni: &str,
) -> Result<(CertificateDer<'static>, Alpn), std::io::Error> {
    handshake_kind(tls, connector, sni)
        .await
        .map(|(leaf, alpn, _)| (leaf, alpn))
}

async fn handshake_kind(
    tls: &Arc<Tls>,
    connector: &TlsConnector,
    sni: &str,
) -> Result<(CertificateDer<'static>, Alpn, rustls::HandshakeKind), std::io::Error> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = {
        let tls = Arc::clone(tls);
        tokio::spawn(async move {
            let (mut stream, alpn) = tls.accept(server_io, TIMEOUT).await?;
            stream.write_all(b"ok").await?;
            stream.shutdown().await?;
            Ok::<_, std::io::Error>(alpn)
        })
    };
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut stream = connector.connect(name, client_io).await?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    assert_eq!(answer, b"ok");
    // Known once the server's first data (which carries the TLS 1.3 tickets) was read.
    let kind = stream.get_ref().1.handshake_kind().unwrap();
    let alpn = server.await.unwrap()?;
    Ok((leaf, alpn, kind))
}

fn der_of(path: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap()
}

#[tokio::test]
async fn sni_picks_the_certificate_and_alpn_the_protocol() {
    let ca = Ca::new();
    let default = ca.issue("default", &["default.test"]);
    let wild = ca.issue("wild", &["*.example.test"]);
    let tls = Tls::new(
        &settings(&[default.clone(), wild.clone()], TlsVersion::Tls12),
        true,
        "test",
    )
    .unwrap();
    let h2 = ca.client(&[b"h2", b"http/1.1"], rustls::ALL_VERSIONS);
    let (leaf, alpn) = handshake(&tls, &h2, "www.example.test").await.unwrap();
    assert_eq!(leaf, der_of(&wild.0));
    assert_eq!(alpn, Alpn::Http2);

    let h1 = ca.client(&[b"http/1.1"], rustls::ALL_VERSIONS);
    let (leaf, alpn) = handshake(&tls, &h1, "default.test").await.unwrap();
    assert_eq!(leaf, der_of(&default.0));
    assert_eq!(alpn, Alpn::Http1);

    let none = ca.client(&[], &[&rustls::version::TLS12]);
    let (_, alpn) = handshake(&tls, &none, "default.test").await.unwrap();
    assert_eq!(alpn, Alpn::None);
    assert_eq!(tls.handshake_errors(), 0);
    assert_eq!(tls.hsts().unwrap(), "max-age=60");
}

#[tokio::test]
async fn sessions_resume_with_tickets() {
    let ca = Ca::new();
    let pair = ca.issue("a", &["a.test"]);
    let tls = Tls::new(&settings(&[pair], TlsVersion::Tls12), true, "test").unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = ca.client_resuming(&[], &[version], true);
        let (_, _, first) = handshake_kind(&tls, &client, "a.test").await.unwrap();
        let (_, _, second) = handshake_kind(&tls, &client, "a.test").await.unwrap();
        assert_eq!(
            (first, second),
            (rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn h2_is_not_offered_when_the_listener_has_http2_off() {
    let ca = Ca::new();
    let pair = ca.issue("a", &["a.test"]);
    let tls = Tls::new(&settings(&[pair], TlsVersion::Tls12), false, "test").unwrap();
    let client = ca.client(&[b"h2", b"http/1.1"], rustls::ALL_VERSIONS);
    let (_, alpn) = handshake(&tls, &client, "a.test").await.unwrap();
    assert_eq!(alpn, Alpn::Http1);
}

#[tokio::test]
async fn failures_are_counted() {
    let ca = Ca::new();
    let pair = ca.issue("a", &["a.test"]);
    let tls = Tls::new(&settings(&[pair], TlsVersion::Tls13), true, "test").unwrap();

    // A TLS 1.2-only client against min_version 1.3.
    let old = ca.client(&[], &[&rustls::version::TLS12]);
    assert!(handshake(&tls, &old, "a.test").await.is_err());

    // Plain HTTP where a ClientHello belongs.
    let (mut client_io, server_io) = tokio::io::duplex(4096);
    client_io
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(tls.accept(server_io, TIMEOUT).await.is_err());

    // Silence until the handshake deadline.
    let (_quiet, server_io) = tokio::io::duplex(4096);
    assert!(tls
        .accept(server_io, Duration::from_millis(50))
        .await
        .is_err());

    let deadline = Instant::now() + TIMEOUT;
    while tls.handshake_errors() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tls.handshake_errors(), 3);
}

#[tokio::test]
async fn rotation_swaps_a_good_pair_and_keeps_the_old_one_on_a_bad_pair() {
    let ca = Ca::new();
    let (cert, key) = ca.issue("site", &["a.test"]);
    let tls = Tls::new(
        &settings(&[(cert.clone(), key.clone())], TlsVersion::Tls12),
        true,
        "test",
    )
    .unwrap();
    let client = ca.client(&[], rustls::ALL_VERSIONS);
    let first = der_of(&cert);

    // Nothing changed: no-op.
    tls.rotate();
    assert_eq!(handshake(&tls, &client, "a.test").await.unwrap().0, first);

    // A certificate whose key is the old one's mismatch: rejected, the old pair serves.
    let (other_cert, _) = ca.issue("other", &["a.test"]);
    std::fs::copy(&other_cert, &cert).unwrap();
    tls.rotate();
    assert_eq!(handshake(&tls, &client, "a.test").await.unwrap().0, first);

    // A whole new pair: served from the next handshake on.
    let (new_cert, new_key) = ca.issue("new", &["a.test"]);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    tls.rotate();
    assert_eq!(
        handshake(&tls, &client, "a.test").await.unwrap().0,
        der_of(&new_cert)
    );
    assert_eq!(tls.certificates()[0].name, "a.test");
}

#[tokio::test]
async fn the_watch_sees_files_replaced_by_rename() {
    let ca = Ca::new();
    let (cert, key) = ca.issue("site", &["a.test"]);
    let tls = Tls::new(
        &settings(&[(cert.clone(), key.clone())], TlsVersion::Tls12),
        true,
        "test",
    )
    .unwrap();
    let _watch = tls.watch().unwrap();
    let client = ca.client(&[], rustls::ALL_VERSIONS);

    let (new_cert, new_key) = ca.issue("new", &["a.test"]);
    let expected = der_of(&new_cert);
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();

    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (leaf, _) = handshake(&tls, &client, "a.test").await.unwrap();
        if leaf == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
