//! Listeners: bind TCP and Unix sockets, accept under the global connection limit, run the TLS
//! handshake on TLS listeners (`tls`), serve each connection with hyper-util's auto builder
//! (HTTP/1.1, and HTTP/2 by ALPN or prior-knowledge h2c when enabled), and drain gracefully when
//! told to stop.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::model::{self, ListenAddress};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::conn_io::{ConnIo, ConnState, MAX_REQUEST_LINE};
use crate::service::{self, ConnInfo};
use crate::tls::{self, Alpn, Tls};
use crate::Proxy;

/// Pending connections the kernel may queue for us (Nginx uses 511 on Linux).
const BACKLOG: i32 = 1024;

/// A bound socket with the listener settings it serves.
pub struct Listener {
    socket: Socket,
    local: String,
    settings: Arc<ArcSwap<Settings>>,
    /// The socket file gatehouse created (not an inherited one), removed when the listener stops.
    socket_file: Option<SocketFile>,
}

/// A Unix socket's path and the inode bound there, so that only our own file is removed (a later
/// reload may have bound a new socket at the same path).
struct SocketFile {
    path: std::path::PathBuf,
    inode: (u64, u64),
}

impl SocketFile {
    fn of(path: &Path) -> Option<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_path_buf(),
            inode: (metadata.dev(), metadata.ino()),
        })
    }

    fn remove(self) {
        if SocketFile::of(&self.path).is_some_and(|now| now.inode == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a listener serves with: its config and its TLS end. A reload swaps it whole
/// ([`ListenerHandle::apply`]); a connection keeps the settings it was accepted with.
pub struct Settings {
    config: model::Listener,
    tls: Option<Arc<Tls>>,
    /// Watches the certificate files while these settings are in use.
    _certificate_watch: Option<tls::Watch>,
}

impl Settings {
    /// Reads `config`'s certificates for the listener bound at `local`, and starts watching them.
    /// Must run inside the tokio runtime.
    fn new(config: &model::Listener, local: &str) -> io::Result<Settings> {
        let tls = match &config.tls {
            Some(tls) => Some(Tls::new(tls, config.http2, local).map_err(io::Error::other)?),
            None => None,
        };
        // Watching starts before the settings are used, so no rotation after that is missed.
        let certificate_watch = tls.as_ref().and_then(Tls::watch);
        Ok(Settings {
            config: config.clone(),
            tls,
            _certificate_watch: certificate_watch,
        })
    }
}

/// Changes a serving listener's settings in place (a reload that kept its address).
#[derive(Clone)]
pub struct ListenerHandle {
    local: String,
    settings: Arc<ArcSwap<Settings>>,
}

impl ListenerHandle {
    /// The bound address, as [`Listener::local_addr`].
    pub fn local_addr(&self) -> &str {
        &self.local
    }

    /// The TLS end now in use, if any.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.settings.load().tls.clone()
    }

    /// Builds settings for `config` without using them yet: a reload first prepares everything
    /// that can fail (certificates), then applies. Must run inside the tokio runtime.
    pub fn prepare(&self, config: &model::Listener) -> io::Result<Settings> {
        Settings::new(config, &self.local)
    }

    /// New connections are served with `settings` from now on.
    pub fn apply(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Binds `config.address`. Must run inside the tokio runtime.
    pub fn bind(config: &model::Listener) -> io::Result<Listener> {
        let mut socket_file = None;
        let (socket, local) = match &config.address {
            ListenAddress::Tcp(address) => {
                let listener = bind_tcp(*address)?;
                let local = listener.local_addr()?.to_string();
                (Socket::Tcp(listener), local)
            }
            ListenAddress::Unix(path) => {
                let listener = bind_unix(path)?;
                socket_file = SocketFile::of(path);
                (Socket::Unix(listener), format!("unix:{}", path.display()))
            }
            ListenAddress::Fd(fd) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("fd:{fd}: no such socket was passed to gatehouse (LISTEN_FDS)"),
                ))
            }
        };
        let settings = Settings::new(config, &local)?;
        Ok(Listener {
            socket,
            local,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            socket_file,
        })
    }

    /// Serves `config` on a socket gatehouse did not bind itself: one inherited through socket
    /// activation (systemd's `LISTEN_FDS`). It must already be bound and listening (TCP or Unix
    /// stream). Must run inside the tokio runtime.
    pub fn adopt(config: &model::Listener, fd: OwnedFd) -> io::Result<Listener> {
        let socket = socket2::Socket::from(fd);
        if socket.r#type()? != socket2::Type::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the inherited socket is not a stream socket",
            ));
        }
        socket.set_nonblocking(true)?;
        let local_address = socket.local_addr()?;
        let (socket, local) = if let Some(address) = local_address.as_socket() {
            let listener = TcpListener::from_std(std::net::TcpListener::from(socket))?;
            (Socket::Tcp(listener), address.to_string())
        } else {
            let path = local_address.as_pathname().map_or_else(
                || config.address.to_string(),
                |path| format!("unix:{}", path.display()),
            );
            let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(
                OwnedFd::from(socket),
            ))?;
            (Socket::Unix(listener), path)
        };
        let settings = Settings::new(config, &local)?;
        Ok(Listener {
            socket,
            local,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            socket_file: None,
        })
    }

    /// The bound address (with the real port when the config said port 0).
    pub fn local_addr(&self) -> &str {
        &self.local
    }

    /// A handle that changes this listener's settings while it serves.
    pub fn handle(&self) -> ListenerHandle {
        ListenerHandle {
            local: self.local.clone(),
            settings: Arc::clone(&self.settings),
        }
    }

    /// Accepts and serves until `stop` turns true, then stops accepting and waits for the
    /// connections it started to finish (the caller bounds that wait with `graceful_timeout`).
    pub async fn serve(self, proxy: Arc<Proxy>, mut stop: watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        let mut backoff = Duration::from_millis(10);
        loop {
            if *stop.borrow() {
                break;
            }
            // Take the connection slot before accepting: at the limit, new clients wait in the
            // kernel's backlog instead of being accepted and starved.
            let permit = tokio::select! {
                permit = Arc::clone(&proxy.connections).acquire_owned() => permit,
                _ = stop.changed() => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = self.accept() => accepted,
                _ = stop.changed() => break,
            };
            match accepted {
                Ok(accepted) => {
                    backoff = Duration::from_millis(10);
                    self.serve_connection(accepted, &proxy, &graceful, permit);
                }
                Err(error) => {
                    // EMFILE and friends: wait a little instead of spinning; the listener survives.
                    tracing::warn!(%error, listener = %self.local, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        tracing::info!(listener = %self.local, connections = graceful.count(), "listener stopped; draining");
        drop(self.socket);
        if let Some(file) = self.socket_file {
            file.remove();
        }
        graceful.shutdown().await;
    }

    async fn accept(&self) -> io::Result<Accepted> {
        match &self.socket {
            Socket::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                // Small responses must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Ok(Accepted::Tcp(stream, peer))
            }
            Socket::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok(Accepted::Unix(stream))
            }
        }
    }

    fn serve_connection(
        &self,
        accepted: Accepted,
        proxy: &Arc<Proxy>,
        graceful: &GracefulShutdown,
        permit: OwnedSemaphorePermit,
    ) {
        match accepted {
            Accepted::Tcp(stream, peer) => {
                self.spawn_connection(stream, Some(peer), proxy, graceful, permit)
            }
            Accepted::Unix(stream) => self.spawn_connection(stream, None, proxy, graceful, permit),
        }
    }

    fn spawn_connection<S>(
        &self,
        stream: S,
        peer: Option<SocketAddr>,
        proxy: &Arc<Proxy>,
        graceful: &GracefulShutdown,
        permit: OwnedSemaphorePermit,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let open = proxy.metrics().connection_opened(&self.local);
        let settings = self.settings.load();
        let http = Http {
            proxy: Arc::clone(proxy),
            peer,
            http2: settings.config.http2,
            redirect_https: settings.config.redirect_https.clone(),
        };
        // Watched from before the handshake, so a drain waits for handshakes in progress too.
        let watcher = graceful.watcher();
        let tls = settings.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => http.serve(stream, Protocol::Plain, watcher).await,
                Some(tls) => {
                    let timeout = http.proxy.site().limits().header_timeout;
                    // A failed handshake was counted and logged by `accept`; the connection ends.
                    if let Ok((stream, alpn)) = tls.accept(stream, timeout).await {
                        let hsts = tls.hsts().cloned();
                        http.serve(stream, Protocol::Tls { alpn, hsts }, watcher)
                            .await;
                    }
                }
            }
            drop(permit);
            drop(open);
        });
    }
}

/// What a connection needs to serve HTTP once its byte stream is ready (decrypted, on TLS).
struct Http {
    proxy: Arc<Proxy>,
    peer: Option<SocketAddr>,
    http2: bool,
    redirect_https: Option<String>,
}

enum Protocol {
    Plain,
    Tls {
        alpn: Alpn,
        hsts: Option<http::HeaderValue>,
    },
}

impl Http {
    async fn serve<S>(self, stream: S, protocol: Protocol, watcher: Watcher)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let site = self.proxy.site();
        let limits = site.limits();
        let (scheme, alpn, hsts) = match protocol {
            Protocol::Plain => ("http", Alpn::None, None),
            Protocol::Tls { alpn, hsts } => ("https", alpn, hsts),
        };
        // ConnIo sits above TLS: its deadlines and head checks see the decrypted bytes.
        let state = ConnState::new(alpn == Alpn::Http2);
        let io = ConnIo::new(
            stream,
            Arc::clone(&state),
            limits.header_timeout,
            limits.keepalive_timeout,
        );
        let info = Arc::new(ConnInfo {
            peer: self.peer,
            scheme,
            redirect_https: self.redirect_https,
            hsts,
            state,
        });
        let builder = http_builder(limits, self.http2);
        // What ALPN settled needs no sniffing of the first bytes.
        let builder = match alpn {
            Alpn::Http2 => builder.http2_only(),
            Alpn::Http1 => builder.http1_only(),
            Alpn::None => builder,
        };
        let proxy = self.proxy;
        let service = service_fn(move |request| {
            service::handle(Arc::clone(&proxy), Arc::clone(&info), request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

fn http_builder(limits: &model::Limits, http2: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let header_bytes = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
    builder
        .http1()
        .timer(TokioTimer::new())
        // ConnIo owns the header and keep-alive deadlines (hyper's would close without a 408).
        .header_read_timeout(None)
        // hyper's own limits sit at twice ours, so that a head over our limit still reaches the
        // service and gets a proper 431 page; only absurd heads meet hyper's bare 431.
        .max_headers(limits.max_header_count.saturating_mul(2).max(100))
        .max_buf_size(
            header_bytes
                .saturating_mul(2)
                .saturating_add(MAX_REQUEST_LINE)
                .max(8192),
        );
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX));
    if http2 {
        builder
    } else {
        builder.http1_only()
    }
}

fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    // Restarts must not fail on connections still in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        // `[::]:80` and `0.0.0.0:80` may both be configured, as in Nginx.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds a Unix socket, first removing a stale socket file left by a dead process. A socket that
/// still answers belongs to someone alive and is not touched.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}
