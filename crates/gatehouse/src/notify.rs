//! The systemd notification protocol (sd_notify): telling a `Type=notify` service manager that
//! gatehouse is ready, reloading or stopping, and pinging its watchdog.
//!
//! API (a [`Notifier`] does nothing when `NOTIFY_SOCKET` is unset, so callers never check):
//! - [`Notifier::from_env`]: reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, then removes
//!   them from the environment so that workers (Gunicorn speaks this protocol too) do not inherit
//!   them. Call it before the runtime starts threads: changing the environment is not thread-safe.
//! - [`Notifier::ready`] (`READY=1`): once every listener is bound and every app has a ready
//!   worker, and again after each reload.
//! - [`Notifier::reloading`] (`RELOADING=1` + `MONOTONIC_USEC`): when a reload starts.
//! - [`Notifier::stopping`] (`STOPPING=1`): when draining starts.
//! - [`Notifier::watchdog_interval`] / [`Notifier::watchdog`] (`WATCHDOG=1`), or
//!   [`Notifier::spawn_watchdog`], which pings every `WATCHDOG_USEC / 2` from a tokio task, so a
//!   stuck runtime stops the pings and systemd restarts the service.
//!
//! Messages are datagrams to a Unix socket: a path, or an abstract name written `@name`.
//! A failed send is logged, never fatal: the service manager's view is advisory.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// The environment variables of the protocol.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Where to send notifications, if anywhere.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    /// The watchdog timeout systemd expects a ping within, if it watches this process.
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// From the environment, which it then clears of the protocol's variables.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os(NOTIFY_SOCKET);
        let usec = std::env::var(WATCHDOG_USEC).ok();
        let pid = std::env::var(WATCHDOG_PID).ok();
        for name in [NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID] {
            std::env::remove_var(name);
        }
        Notifier::new(
            socket.as_deref(),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// From the variables' values (`own_pid`: this process, to honour `WATCHDOG_PID`).
    pub fn new(
        notify_socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Notifier {
        let target = notify_socket
            .filter(|s| !s.is_empty())
            .and_then(|s| match Target::open(s) {
                Ok(target) => Some(target),
                Err(err) => {
                    tracing::warn!(socket = ?s, %err, "NOTIFY_SOCKET cannot be used; not notifying systemd");
                    None
                }
            });
        // WATCHDOG_PID names the process systemd watches; when it is another one (we were started
        // by a wrapper that did not clear it), the pings are not ours to send.
        let ours = watchdog_pid.is_none_or(|pid| pid.trim().parse::<u32>().ok() == Some(own_pid));
        let watchdog = watchdog_usec
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    #[cfg(test)]
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// `RELOADING=1` with the monotonic time, as systemd's `Type=notify-reload` wants it.
    pub fn reloading(&self) {
        match monotonic_usec() {
            Some(usec) => self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
            None => self.send("RELOADING=1"),
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// Pings the watchdog every [`Self::watchdog_interval`] on the current tokio runtime;
    /// `None` when systemd does not watch this process. Abort the task to stop pinging.
    pub fn spawn_watchdog(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.watchdog_interval()?;
        let notifier = Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                notifier.watchdog();
            }
        }))
    }

    fn send(&self, message: &str) {
        if let Some(target) = &self.target {
            if let Err(err) = target
                .socket
                .send_to_addr(message.as_bytes(), &target.address)
            {
                tracing::warn!(%err, message, "cannot notify systemd");
            }
        }
    }
}

impl Target {
    fn open(socket: &OsStr) -> io::Result<Target> {
        let bytes = socket.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None if bytes.starts_with(b"/") => SocketAddr::from_pathname(socket)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "only Unix socket paths and @abstract names are supported",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Target { socket, address })
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with.
#[allow(unsafe_code)]
fn monotonic_usec() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(secs * 1_000_000 + nanos / 1_000)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn receiver() -> (tempfile_dir::Dir, UnixDatagram, std::path::PathBuf) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.0.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, socket, path)
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_arrive_in_order_on_a_path_socket() {
        let (_dir, socket, path) = receiver();
        let notifier = Notifier::new(Some(path.as_os_str()), None, None, 42);
        notifier.ready();
        notifier.reloading();
        notifier.ready();
        notifier.stopping();
        assert_eq!(recv(&socket), "READY=1");
        let reloading = recv(&socket);
        let usec = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap();
        assert!(usec.parse::<u64>().unwrap() > 0);
        assert_eq!(recv(&socket), "READY=1");
        assert_eq!(recv(&socket), "STOPPING=1");
    }

    #[test]
    fn abstract_sockets_are_written_with_an_at_sign() {
        let name = format!("gatehouse-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let env = format!("@{name}");
        let notifier = Notifier::new(Some(OsStr::new(&env)), None, None, 1);
        notifier.watchdog();
        assert_eq!(recv(&socket), "WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_only_for_the_watched_pid() {
        let (_dir, _socket, path) = receiver();
        let socket = Some(path.as_os_str());
        let ours = Notifier::new(socket, Some("3000000"), Some("42"), 42);
        assert_eq!(ours.watchdog_interval(), Some(Duration::from_millis(1500)));
        let unset_pid = Notifier::new(socket, Some("3000000"), None, 42);
        assert_eq!(
            unset_pid.watchdog_interval(),
            Some(Duration::from_millis(1500))
        );
        let other = Notifier::new(socket, Some("3000000"), Some("7"), 42);
        assert_eq!(other.watchdog_interval(), None);
        let off = Notifier::new(socket, Some("0"), None, 42);
        assert_eq!(off.watchdog_interval(), None);
        let no_socket = Notifier::new(None, Some("3000000"), None, 42);
        assert_eq!(no_socket.watchdog_interval(), None);
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let notifier = Notifier::new(None, None, None, 1);
        assert!(!notifier.is_enabled());
        notifier.ready();
        let relative = Notifier::new(Some(OsStr::new("relative.sock")), None, None, 1);
        assert!(!relative.is_enabled());
    }

    /// A temporary directory without a dev-dependency: removed on drop.
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);

        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "gatehouse-notify-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
