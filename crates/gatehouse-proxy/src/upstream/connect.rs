//! Opening a new HTTP/1.1 connection to a server, over TCP or a Unix socket.

use std::io;
use std::time::Duration;

use gatehouse_config::model::Endpoint;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::body::Body;

/// Connect within `timeout` and start the connection's driver task. The driver ends when the
/// connection closes or the last [`SendRequest`] for it is dropped.
pub(crate) async fn open(endpoint: &Endpoint, timeout: Duration) -> io::Result<SendRequest<Body>> {
    let connecting = async {
        match endpoint {
            Endpoint::Tcp(host_port) => {
                let stream = TcpStream::connect(host_port.as_str()).await?;
                // Requests and small responses go out at once, not after Nagle's delay.
                stream.set_nodelay(true)?;
                handshake(stream).await
            }
            Endpoint::Unix(path) => handshake(UnixStream::connect(path).await?).await,
        }
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )),
    }
}

async fn handshake<S>(stream: S) -> io::Result<SendRequest<Body>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        // Upgrades enabled on every connection: which request will be a WebSocket is not known
        // when the connection opens.
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
