//! Socket activation (sd_listen_fds): listening sockets a service manager bound and passed down as
//! descriptors 3, 4, ... (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`).
//!
//! API:
//! - [`Activation::from_env`]: takes the inherited descriptors (once per process), marks them
//!   close-on-exec so workers do not inherit them, reads each one's local address, and removes
//!   the three variables from the environment. Call it before the runtime starts threads.
//! - [`Activation::take`]: the descriptor for a `[[listener]] address`: `fd:N` by number, an
//!   `IP:PORT` or `unix:PATH` by the socket's local address. Each descriptor is given out once.
//!   The caller turns it into a `std::net::TcpListener` / `UnixListener` (`From<OwnedFd>`), sets it
//!   non-blocking and hands it to tokio; it is already listening.
//! - [`Activation::into_unused`]: what no listener took, to log (dropping closes them).
//!
//! [`parse`] is the environment's meaning without the environment, for tests.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use gatehouse_config::model::ListenAddress;

/// The first passed descriptor (SD_LISTEN_FDS_START).
const FIRST_FD: RawFd = 3;

/// The sockets passed to this process, not yet taken by a listener.
#[derive(Debug, Default)]
pub struct Activation {
    sockets: Vec<Inherited>,
}

#[derive(Debug)]
struct Inherited {
    fd: OwnedFd,
    /// From LISTEN_FDNAMES (`FileDescriptorName=` in the socket unit).
    name: Option<String>,
    local: Local,
}

/// What an inherited socket is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// Not a stream socket with an address we can match (a datagram or abstract socket).
    Other,
}

/// One passed descriptor as the environment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub fd: RawFd,
    pub name: Option<String>,
}

/// Set once the descriptors are taken: a second take would own them twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

impl Activation {
    /// The sockets this process was passed (none when LISTEN_FDS is unset or meant for another
    /// process). A malformed environment is an error, so that a misconfigured unit is noticed.
    pub fn from_env() -> Result<Activation> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        let passed = parse(
            pid.as_deref(),
            fds.as_deref(),
            names.as_deref(),
            std::process::id(),
        )?;
        if passed.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
            return Ok(Activation::default());
        }
        let mut sockets = Vec::with_capacity(passed.len());
        for Passed { fd, name } in passed {
            // SAFETY: descriptors FIRST_FD.. were passed to this process by its service manager
            // for it to own (LISTEN_PID is ours), nothing else in the process uses them, and
            // TAKEN makes sure they are wrapped only once.
            #[allow(unsafe_code)]
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            sockets.push(Inherited::adopt(fd, name)?);
        }
        Ok(Activation { sockets })
    }

    /// Sockets given directly (tests).
    #[cfg(test)]
    pub fn from_fds(fds: Vec<(OwnedFd, Option<String>)>) -> Result<Activation> {
        let sockets = fds
            .into_iter()
            .map(|(fd, name)| Inherited::adopt(fd, name))
            .collect::<Result<_>>()?;
        Ok(Activation { sockets })
    }

    /// The inherited socket for `address`, if there is one; each is given out once.
    pub fn take(&mut self, address: &ListenAddress) -> Option<OwnedFd> {
        let at = self.sockets.iter().position(|s| match address {
            ListenAddress::Fd(n) => s.fd.as_raw_fd() == *n,
            ListenAddress::Tcp(addr) => s.local == Local::Tcp(*addr),
            ListenAddress::Unix(path) => s.local == Local::Unix(path.clone()),
        })?;
        Some(self.sockets.remove(at).fd)
    }

    /// The sockets no listener took, described for a log line (`fd:4 (name) 0.0.0.0:443`), with
    /// their descriptors: dropping those closes them.
    pub fn into_unused(self) -> Vec<(String, OwnedFd)> {
        self.sockets
            .into_iter()
            .map(|s| {
                let name = s.name.map(|n| format!(" ({n})")).unwrap_or_default();
                let local = match &s.local {
                    Local::Tcp(addr) => addr.to_string(),
                    Local::Unix(path) => format!("unix:{}", path.display()),
                    Local::Other => "not a stream socket".to_owned(),
                };
                (format!("fd:{}{name} {local}", s.fd.as_raw_fd()), s.fd)
            })
            .collect()
    }
}

impl Inherited {
    fn adopt(fd: OwnedFd, name: Option<String>) -> Result<Inherited> {
        set_cloexec(&fd).with_context(|| format!("inherited fd {}", fd.as_raw_fd()))?;
        let (local, fd) = local_address(fd);
        Ok(Inherited { fd, name, local })
    }
}

/// What LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES say, for the process `own_pid`: the
/// descriptors passed and their names. Empty when LISTEN_FDS is unset, or when LISTEN_PID is unset
/// or names another process (the variables were inherited, not meant for us).
pub fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    own_pid: u32,
) -> Result<Vec<Passed>> {
    let Some(fds) = listen_fds else {
        return Ok(Vec::new());
    };
    // As sd_listen_fds(3): without LISTEN_PID naming this process, the descriptors are not ours
    // (the variables were inherited), and descriptors 3.. may be anything.
    let Some(pid) = listen_pid else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .with_context(|| format!("LISTEN_PID={pid:?}"))?;
    if pid != own_pid {
        return Ok(Vec::new());
    }
    let count: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=4096).contains(n))
        .with_context(|| format!("LISTEN_FDS={fds:?} is not a number of descriptors"))?;
    let names: Vec<Option<String>> = match listen_fdnames {
        None | Some("") => vec![None; count as usize],
        Some(names) => names.split(':').map(|n| Some(n.to_owned())).collect(),
    };
    if names.len() != count as usize {
        bail!(
            "LISTEN_FDNAMES has {} names for LISTEN_FDS={count}",
            names.len()
        );
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Passed {
            fd: FIRST_FD + i as RawFd,
            name,
        })
        .collect())
}

/// The socket's local address: TCP or Unix path, told apart by trying each.
fn local_address(fd: OwnedFd) -> (Local, OwnedFd) {
    if !is_stream(&fd) {
        return (Local::Other, fd);
    }
    let tcp = TcpListener::from(fd);
    if let Ok(addr) = tcp.local_addr() {
        return (Local::Tcp(addr), OwnedFd::from(tcp));
    }
    let unix = UnixListener::from(OwnedFd::from(tcp));
    let local = match unix.local_addr() {
        Ok(addr) => addr
            .as_pathname()
            .map_or(Local::Other, |p| Local::Unix(p.to_path_buf())),
        Err(_) => Local::Other,
    };
    (local, OwnedFd::from(unix))
}

#[allow(unsafe_code)]
fn is_stream(fd: &OwnedFd) -> bool {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `kind`, a live c_int.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && kind == libc::SOCK_STREAM
}

/// Workers must not inherit the listening sockets: a worker holding one would keep the port
/// open after gatehouse closed it.
#[allow(unsafe_code)]
fn set_cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, reading then setting its descriptor flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_environment_names_descriptors_from_3() {
        let passed = parse(Some("42"), Some("2"), Some("http:https"), 42).unwrap();
        assert_eq!(
            passed,
            vec![
                Passed {
                    fd: 3,
                    name: Some("http".into())
                },
                Passed {
                    fd: 4,
                    name: Some("https".into())
                },
            ]
        );
        let unnamed = parse(Some("42"), Some("1"), None, 42).unwrap();
        assert_eq!(unnamed, vec![Passed { fd: 3, name: None }]);
        // No LISTEN_PID: not ours, as sd_listen_fds(3) says.
        assert!(parse(None, Some("1"), None, 42).unwrap().is_empty());
    }

    #[test]
    fn variables_meant_for_another_process_or_absent_pass_nothing() {
        assert!(parse(Some("7"), Some("2"), None, 42).unwrap().is_empty());
        assert!(parse(None, None, None, 42).unwrap().is_empty());
        assert!(parse(Some("42"), Some("0"), None, 42).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_environment_is_an_error() {
        assert!(parse(Some("x"), Some("1"), None, 42).is_err());
        assert!(parse(Some("42"), Some("-1"), None, 42).is_err());
        assert!(parse(Some("42"), Some("2"), Some("only-one"), 42).is_err());
    }

    #[test]
    fn sockets_are_matched_by_local_address_or_number_and_taken_once() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("gatehouse-activation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let _ = std::fs::remove_file(&path);
        let unix = UnixListener::bind(&path).unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let other_fd = other.as_raw_fd();

        let mut activation = Activation::from_fds(vec![
            (OwnedFd::from(tcp), Some("http".into())),
            (OwnedFd::from(unix), None),
            (OwnedFd::from(other), None),
        ])
        .unwrap();

        let taken = activation.take(&ListenAddress::Tcp(tcp_addr)).unwrap();
        assert_eq!(TcpListener::from(taken).local_addr().unwrap(), tcp_addr);
        assert!(
            activation.take(&ListenAddress::Tcp(tcp_addr)).is_none(),
            "once"
        );
        assert!(activation
            .take(&ListenAddress::Unix(path.clone()))
            .is_some());
        assert!(activation
            .take(&ListenAddress::Tcp("127.0.0.1:1".parse().unwrap()))
            .is_none());
        let unused = activation.into_unused();
        assert_eq!(unused.len(), 1);
        assert!(
            unused[0]
                .0
                .starts_with(&format!("fd:{other_fd} 127.0.0.1:")),
            "{}",
            unused[0].0
        );

        let again = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = again.as_raw_fd();
        let mut by_number = Activation::from_fds(vec![(OwnedFd::from(again), None)]).unwrap();
        let taken = by_number.take(&ListenAddress::Fd(fd)).unwrap();
        // SAFETY: fcntl(F_GETFD) only reads the flags of a descriptor we own.
        #[allow(unsafe_code)]
        let flags = unsafe { libc::fcntl(taken.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
