//! A WebSocket connection after the upstream answered 101: bytes copied both ways until either
//! side closes.
//!
//! The tunnel exists only after a 101, so bytes a client sends after a refused upgrade request
//! are never tunnelled (Pingora CVE-2026-2833).

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::upstream::server::Lease;

/// Join the client's and the upstream's upgraded connections in a task of their own. The lease
/// keeps the tunnel counted as outstanding on its server while it lasts.
pub(crate) fn spawn(client: OnUpgrade, upstream: OnUpgrade, lease: Lease) {
    tokio::spawn(async move {
        let server = lease.server().label().to_owned();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%server, %error, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(%server, sent, received, "tunnel closed"),
            Err(error) => tracing::debug!(%server, %error, "tunnel broke"),
        }
        drop(lease);
    });
}
