//! A Rust HTTPS client for the tests: tokio-rustls trusting the test CA, then hyper's HTTP/1.1 or
//! HTTP/2 client on the connection, as ALPN decided. Session resumption is off, so every
//! connection is a full handshake that shows the certificate served now.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::certs::{Leaf, TestCa};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// ALPN protocols to offer.
pub const H1: &[&[u8]] = &[b"http/1.1"];
pub const H2: &[&[u8]] = &[b"h2", b"http/1.1"];

#[derive(Clone)]
pub struct Client {
    connector: TlsConnector,
}

/// One TLS connection, with the certificate it was made with.
pub struct Conn {
    sender: Sender,
    pub leaf: CertificateDer<'static>,
    host: String,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    pub fn new(ca: &TestCa, alpn: &[&[u8]]) -> Client {
        Client::build(ca, alpn, None)
    }

    /// A client presenting `identity` as its certificate (mutual TLS).
    pub fn with_identity(ca: &TestCa, alpn: &[&[u8]], identity: &Leaf) -> Client {
        Client::build(ca, alpn, Some(identity))
    }

    fn build(ca: &TestCa, alpn: &[&[u8]], identity: Option<&Leaf>) -> Client {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        roots.add(ca.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(leaf) => {
                let key = PrivatePkcs8KeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
                builder
                    .with_client_auth_cert(vec![leaf.der.clone()], PrivateKeyDer::Pkcs8(key))
                    .unwrap()
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// Connects to `addr` asking for `sni`, and starts HTTP/2 if the server chose `h2`.
    pub async fn connect(&self, addr: SocketAddr, sni: &str) -> Result<Conn, Error> {
        let tcp = TcpStream::connect(addr).await?;
        let stream = self
            .connector
            .connect(ServerName::try_from(sni.to_owned())?, tcp)
            .await?;
        let (_, session) = stream.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or("no server certificate")?
            .clone();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let sender = if h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(connection);
            Sender::H2(sender)
        } else {
            let (sender, connection) = http1::handshake(io).await?;
            tokio::spawn(connection);
            Sender::H1(sender)
        };
        Ok(Conn {
            sender,
            leaf,
            host: sni.to_owned(),
        })
    }

    /// One request on a fresh connection.
    pub async fn get(
        &self,
        addr: SocketAddr,
        sni: &str,
        path: &str,
    ) -> Result<Response<Bytes>, Error> {
        self.connect(addr, sni).await?.get(path).await
    }
}

impl Conn {
    pub async fn get(&mut self, path: &str) -> Result<Response<Bytes>, Error> {
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                let request = Request::get(path)
                    .header(http::header::HOST, &self.host)
                    .body(Empty::new())?;
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::H2(sender) => {
                let request = Request::get(format!("https://{}{path}", self.host))
                    .version(Version::HTTP_2)
                    .body(Empty::new())?;
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}
