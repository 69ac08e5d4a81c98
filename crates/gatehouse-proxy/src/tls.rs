//! The TLS end of a listener (`[listener.tls]`): rustls with the ring provider, TLS 1.2 and 1.3
//! with rustls' default (modern, AEAD-only) suites, ALPN `h2` + `http/1.1`, stateless session
//! tickets, optional client certificates, and a certificate per SNI name.
//!
//! Certificates sit in a [`resolver::Resolver`] over an `ArcSwap`, so that [`watch`] can swap a
//! rotated pair in for new handshakes while connections already established keep the one they
//! were made with. The handshake counts its failures and reports each certificate's expiry, which
//! is what the metrics read ([`Tls::handshake_errors`], [`Tls::certificates`]).

mod resolver;
mod watch;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gatehouse_config::certs::{self, PairError};
use gatehouse_config::model::{self, TlsVersion};
use http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use resolver::{Entry, Resolver};
pub use watch::Watch;

/// Why a listener's TLS could not be set up. Validation has already checked the files, so these
/// are rare: an unsupported key, or the random generator failing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS setup failed")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verification setup failed")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

/// One listener's TLS: the acceptor, its certificates, and its counters.
pub struct Tls {
    /// The listener's address, for logs.
    listener: String,
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    provider: Arc<CryptoProvider>,
    hsts: Option<HeaderValue>,
    handshake_errors: AtomicU64,
    /// The last rotation error logged per certificate, so a bad file is reported once, not at
    /// every event in its directory.
    rejected: Mutex<Vec<Option<PairError>>>,
}

/// What the metrics show for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// The certificate's first DNS name, else its file.
    pub name: String,
    pub cert_path: PathBuf,
    pub not_after: SystemTime,
}

/// The protocol the client and we agreed on by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http2,
    Http1,
    /// The client offered no ALPN: detect from the first bytes, as on a plain listener.
    None,
}

impl Tls {
    /// Builds the listener's TLS from its validated config. `http2` offers `h2` by ALPN.
    pub fn new(config: &model::Tls, http2: bool, listener: &str) -> Result<Arc<Tls>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let entries = config
            .certificates
            .iter()
            .map(|certificate| Entry::new(certificate.clone(), &provider))
            .collect::<Result<Vec<_>, _>>()?;
        let resolver = Arc::new(Resolver::new(entries));

        let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)?;
        let builder = match &config.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in &ca.certs {
                    roots.add(cert.clone())?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut server = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        server.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        // Stateless tickets (keys rotate every 6 hours) for TLS 1.3 and 1.2 resumption; the
        // default in-memory session cache stays for 1.2 clients that resume by session id.
        server.ticketer = rustls::crypto::ring::Ticketer::new()?;

        let count = config.certificates.len();
        Ok(Arc::new(Tls {
            listener: listener.to_owned(),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            provider,
            // Validation checked the value is a valid header.
            hsts: config
                .hsts
                .as_deref()
                .and_then(|value| HeaderValue::from_str(value).ok()),
            handshake_errors: AtomicU64::new(0),
            rejected: Mutex::new(vec![None; count]),
        }))
    }

    /// Runs the server handshake within `timeout` (the listener's header timeout, so a client
    /// cannot hold a connection slot by stalling the handshake). A failure is counted, logged at
    /// debug level, and ends the connection.
    pub async fn accept<S>(&self, stream: S, timeout: Duration) -> io::Result<(TlsStream<S>, Alpn)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let result = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake not complete in time",
            )),
        };
        match result {
            Ok(stream) => {
                let alpn = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Alpn::Http2,
                    Some(_) => Alpn::Http1,
                    None => Alpn::None,
                };
                Ok((stream, alpn))
            }
            Err(error) => {
                self.handshake_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(listener = %self.listener, %error, "TLS handshake failed");
                Err(error)
            }
        }
    }

    /// The `Strict-Transport-Security` value for responses, when configured.
    pub fn hsts(&self) -> Option<&HeaderValue> {
        self.hsts.as_ref()
    }

    /// Handshakes that failed on this listener since start (bad client data, timeouts, refused
    /// versions or client certificates).
    pub fn handshake_errors(&self) -> u64 {
        self.handshake_errors.load(Ordering::Relaxed)
    }

    /// The certificates served now, in config order.
    pub fn certificates(&self) -> Vec<CertificateStatus> {
        self.resolver
            .entries()
            .iter()
            .map(|entry| CertificateStatus {
                name: entry.certificate.name(),
                cert_path: entry.certificate.cert_path.clone(),
                not_after: entry.certificate.not_after,
            })
            .collect()
    }

    /// Starts watching the certificate files; see [`watch`]. `None` (with a warning logged) when
    /// the system refuses: serving goes on with the certificates loaded at start.
    pub fn watch(self: &Arc<Self>) -> Option<Watch> {
        match watch::start(Arc::clone(self)) {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(listener = %self.listener, %error, "cannot watch the certificate files; rotated certificates need a restart");
                None
            }
        }
    }

    /// Re-reads every certificate pair and swaps in those whose content changed and passes the
    /// same checks as at start. A pair that fails keeps its old certificate serving.
    fn rotate(&self) {
        let mut entries = self.resolver.entries().to_vec();
        let mut changed = false;
        let now = SystemTime::now();
        let mut rejected = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, entry) in entries.iter_mut().enumerate() {
            let old = &entry.certificate;
            match certs::load_pair(&old.cert_path, &old.key_path, now) {
                Ok(new) if new.chain == old.chain && new.key == old.key => {
                    rejected[i] = None;
                }
                Ok(new) => match Entry::new(new, &self.provider) {
                    Ok(fresh) => {
                        let new = &fresh.certificate;
                        tracing::info!(listener = %self.listener, certificate = %new.name(), file = %new.cert_path.display(), not_after = %certs::date(new.not_after), "certificate rotated; new handshakes use it");
                        if new.not_after < now {
                            tracing::warn!(listener = %self.listener, file = %new.cert_path.display(), "the new certificate expired on {}; serving it anyway", certs::date(new.not_after));
                        }
                        *entry = fresh;
                        rejected[i] = None;
                        changed = true;
                    }
                    Err(error) => {
                        tracing::error!(listener = %self.listener, file = %old.key_path.display(), error = %error, "new certificate rejected; the old one keeps serving")
                    }
                },
                Err(error) => {
                    if rejected[i].as_ref() != Some(&error) {
                        tracing::error!(listener = %self.listener, %error, "new certificate files rejected; the old certificate keeps serving");
                        rejected[i] = Some(error);
                    }
                }
            }
        }
        if changed {
            self.resolver.replace(entries);
        }
    }

    /// The directories to watch: each file's own directory, and the directory of the file its
    /// symlinks lead to (certbot's `live/` links into `archive/`; a Kubernetes secret's files
    /// link through `..data`, which is swapped in the file's own directory).
    fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for entry in self.resolver.entries().iter() {
            for file in [&entry.certificate.cert_path, &entry.certificate.key_path] {
                let real = std::fs::canonicalize(file).ok();
                for path in [Some(file.clone()), real].into_iter().flatten() {
                    if let Some(dir) = path.parent() {
                        if !dirs.iter().any(|known| known == dir) {
                            dirs.push(dir.to_path_buf());
                        }
                    }
                }
            }
        }
        dirs
    }
}

impl Entry {
    fn new(certificate: model::Certificate, provider: &CryptoProvider) -> Result<Entry, Error> {
        let key = provider
            .key_provider
            .load_private_key(certificate.key.0.clone_key())?;
        let key = Arc::new(CertifiedKey::new(certificate.chain.clone(), key));
        Ok(Entry { certificate, key })
    }
}

#[cfg(test)]
mod tests;
