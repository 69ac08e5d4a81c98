//! The listeners being served, by configured address (`ListenerKey`): started at start, added, removed and
//! changed in place by a reload, and all stopped when gatehouse stops.
//!
//! Each listener has its own stop signal, so a reload can drain one while the others go on. Every
//! listener task, a removed one still draining included, stays in one set, so a graceful stop
//! waits for all of them.

use std::sync::Arc;

use anyhow::Context as _;
use gatehouse_config::{model, ListenerKey};
use gatehouse_proxy::tls::Tls;
use gatehouse_proxy::{Listener, ListenerHandle, Proxy};

use crate::activation::Activation;
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Default)]
pub struct Listeners {
    running: Vec<Running>,
    serving: JoinSet<()>,
}

struct Running {
    /// As configured (a port-0 address keeps its 0 here; the real port is in the handle).
    key: ListenerKey,
    handle: ListenerHandle,
    stop: watch::Sender<bool>,
}

/// Binds every listener in `configs`, or none: on the first failure the ones bound so far are
/// closed again (dropped) and the error names the address. A listener whose address matches a
/// socket passed by socket activation serves that socket instead of binding; passed sockets that
/// no listener takes are closed, with a warning.
pub fn bind_all(
    configs: &[model::Listener],
    activation: &mut Activation,
) -> anyhow::Result<Vec<Listener>> {
    let bound = configs
        .iter()
        .map(|config| match activation.take(&config.address) {
            Some(fd) => Listener::adopt(config, fd).with_context(|| {
                format!("cannot serve the inherited socket for {}", config.address)
            }),
            None => Listener::bind(config)
                .with_context(|| format!("cannot listen on {}", config.address)),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (description, fd) in std::mem::take(activation).into_unused() {
        tracing::warn!("the inherited socket {description} matches no listener; closing it");
        drop(fd);
    }
    Ok(bound)
}

impl Listeners {
    /// Starts accepting on `listener` (bound for `key`) and logs `listening on ADDR`.
    pub fn serve(&mut self, key: ListenerKey, listener: Listener, proxy: &Arc<Proxy>) {
        tracing::info!("listening on {}", listener.local_addr());
        let (stop, stopped) = watch::channel(false);
        self.running.push(Running {
            key,
            handle: listener.handle(),
            stop,
        });
        self.serving
            .spawn(listener.serve(Arc::clone(proxy), stopped));
    }

    /// Stops accepting on `key`'s listener; its open connections finish (the task drains in the
    /// background, and a graceful stop still waits for it).
    pub fn remove(&mut self, key: &ListenerKey) {
        if let Some(index) = self.running.iter().position(|r| &r.key == key) {
            let running = self.running.remove(index);
            tracing::info!(listener = %running.handle.local_addr(), "listener removed; draining");
            let _ = running.stop.send(true);
        }
    }

    /// Every listener's handle, by key (for a reload being prepared).
    pub fn handles(&self) -> Vec<(ListenerKey, ListenerHandle)> {
        self.running
            .iter()
            .map(|running| (running.key.clone(), running.handle.clone()))
            .collect()
    }

    /// TLS listeners by their bound address, for the handshake and certificate metrics.
    pub fn tls(&self) -> Vec<(String, Arc<Tls>)> {
        self.running
            .iter()
            .filter_map(|running| {
                let tls = running.handle.tls()?;
                Some((running.handle.local_addr().to_owned(), tls))
            })
            .collect()
    }

    /// Stops accepting everywhere. [`Listeners::drained`] waits for the connections.
    pub fn stop_all(&self) {
        for running in &self.running {
            let _ = running.stop.send(true);
        }
    }

    /// Returns when every listener task, removed ones included, has finished its connections.
    pub async fn drained(&mut self) {
        while self.serving.join_next().await.is_some() {}
    }
}
