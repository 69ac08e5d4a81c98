//! Starting one worker process: its command line, environment, socket, identity and process group.
//!
//! A `Launcher` holds one app config, checked and resolved once (user and group names, the socket
//! directory, and for `wsgi = ...` the built-in worker's program, see `wsgi.rs`);
//! `Launcher::spawn` starts one worker from it.
//!
//! # How long a worker lives (what is and is not guaranteed)
//!
//! Every worker is a direct child of gatehouse and leads its own process group (`setpgid(0, 0)`).
//! Signals meant for a worker (TERM, ABRT, KILL) go to the whole group, so a Gunicorn master's own
//! workers get them too.
//!
//! - **While gatehouse runs**, no member of a worker's group outlives its leader: the moment the
//!   leader is reaped, the monitor SIGKILLs the group (`monitor.rs`). Dropping the supervisor or its
//!   runtime kills the groups too. Only a grandchild that leaves the group (`setsid`, `setpgid`) escapes.
//! - **When gatehouse is SIGKILLed**, the kernel kills each direct child (`PR_SET_PDEATHSIG`, armed
//!   after `setuid`, with a check that gatehouse did not die before it was armed). Grandchildren are
//!   not signalled by the kernel: Gunicorn's workers notice that their master is gone (they check
//!   their parent pid, within about half of Gunicorn's `--timeout`) and exit, but a grandchild that
//!   ignores its parent survives, reparented (`tests/supervisor/sigkill.rs`). Under systemd (the
//!   default `KillMode=control-group`) or as a container's main process, the service manager or
//!   the end of the PID namespace kills those too.
//!
//! We do not make gatehouse a child subreaper (`PR_SET_CHILD_SUBREAPER`): it would not help when
//! gatehouse is SIGKILLed (orphans then go to the next subreaper up), and gatehouse would have to
//! reap every orphan by pid without stealing the exit status of children that tokio and std wait for.
//! Killing the group already covers the grandchildren that stay in it.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process; tokio ends
//! idle runtime threads (blocking-pool threads, workers given up by `block_in_place`). So every
//! worker is forked on one dedicated thread that lives as long as gatehouse (`fork_thread`).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use gatehouse_config::model::{App, Endpoint, Launch};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::output;
use crate::sys;
use crate::{Error, WorkerId};

/// `sun_path` holds 108 bytes including the terminating NUL.
const SOCKET_PATH_MAX: usize = 107;
/// The longest socket file name we make: `w` + a u64 + `.sock`.
const SOCKET_NAME_MAX: usize = 1 + 20 + 5;

/// One app config, ready to spawn workers from.
pub(crate) struct Launcher {
    pub app: Arc<App>,
    /// `runtime_dir/<app>/`, private to gatehouse (and the worker user).
    dir: PathBuf,
    argv: Vec<String>,
    identity: Option<Identity>,
}

/// The uid and gid workers run as (only when gatehouse runs as root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// A worker process just spawned.
pub(crate) struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub endpoint: Endpoint,
    /// The Unix socket file to remove when the worker is gone.
    pub socket: Option<PathBuf>,
}

impl Launcher {
    /// Checks `app` and prepares its socket directory under `runtime_dir`.
    pub fn new(app: App, runtime_dir: &Path) -> Result<Launcher, Error> {
        if let Launch::Command(argv) = &app.launch {
            if argv.is_empty() {
                return Err(Error::EmptyCommand { app: app.name });
            }
        }
        if app.name.is_empty() || app.name.contains('/') || app.name == "." || app.name == ".." {
            return Err(Error::BadName { name: app.name });
        }
        let identity = resolve_identity(&app)?;
        let dir = runtime_dir.join(&app.name);
        let longest = dir.as_os_str().len() + 1 + SOCKET_NAME_MAX;
        if longest > SOCKET_PATH_MAX {
            return Err(Error::SocketPathTooLong {
                path: dir.join(socket_name(WorkerId::MAX)),
                max: SOCKET_PATH_MAX,
            });
        }
        prepare_dir(runtime_dir, &dir, identity).map_err(|source| Error::RuntimeDir {
            path: dir.clone(),
            source,
        })?;
        let argv = match &app.launch {
            Launch::Command(argv) => argv.clone(),
            Launch::Wsgi { target, python } => crate::wsgi::prepare(&app, target, python, &dir)
                .map_err(|source| Error::WsgiProgram {
                    app: app.name.clone(),
                    path: dir.clone(),
                    source,
                })?,
        };
        Ok(Launcher {
            app: Arc::new(app),
            dir,
            argv,
            identity,
        })
    }

    /// Removes sockets left by an earlier gatehouse (call once, before the first spawn).
    pub fn remove_stale_sockets(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // A socket that still answers belongs to a live worker: one of an app a reload
            // removed and re-added, still draining under the same name.
            let live = || std::os::unix::net::UnixStream::connect(&path).is_ok();
            if path.extension().is_some_and(|ext| ext == "sock") && !live() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Starts worker `id` in `slot`.
    pub async fn spawn(&self, id: WorkerId, slot: usize) -> Result<Spawned, Error> {
        let app = &self.app;
        let uses_port = self.argv.iter().any(|arg| arg.contains("{port}"));
        let socket = self.dir.join(socket_name(id));
        let endpoint = if uses_port {
            let port = free_port().map_err(|source| self.spawn_error(source))?;
            Endpoint::Tcp(format!("127.0.0.1:{port}"))
        } else {
            // A socket file of an earlier process with the same name would make the bind fail.
            let _ = std::fs::remove_file(&socket);
            Endpoint::Unix(socket.clone())
        };
        let port = match &endpoint {
            Endpoint::Tcp(hostport) => hostport.rsplit(':').next().map(str::to_owned),
            Endpoint::Unix(_) => None,
        };
        let socket_str = socket.to_string_lossy();
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|arg| substitute(arg, &socket_str, port.as_deref(), slot))
            .collect();

        // `argv` is not empty: `new` checked it.
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&app.directory)
            .envs(worker_env(&endpoint, slot))
            .envs(&app.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(identity) = self.identity {
            if let Some(gid) = identity.gid {
                command.gid(gid);
            }
            if let Some(uid) = identity.uid {
                command.uid(uid);
            }
        }
        sys::kill_with_parent(&mut command);

        let mut child = fork(command)
            .await
            .map_err(|source| self.spawn_error(source))?;
        let Some(pid) = child.id() else {
            // Only a reaped child has no pid, and we have not waited yet.
            return Err(self.spawn_error(io::Error::other("the worker has no pid")));
        };
        let source = output::Source::new(&app.name, slot, pid);
        if let Some(stdout) = child.stdout.take() {
            output::capture(stdout, source.clone(), output::Stream::Stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output::capture(stderr, source, output::Stream::Stderr);
        }
        let socket = matches!(endpoint, Endpoint::Unix(_)).then_some(socket);
        Ok(Spawned {
            child,
            pid,
            endpoint,
            socket,
        })
    }

    fn spawn_error(&self, source: io::Error) -> Error {
        Error::Spawn {
            app: self.app.name.clone(),
            program: self.argv[0].clone(),
            source,
        }
    }
}

fn socket_name(id: WorkerId) -> String {
    format!("w{id}.sock")
}

/// Replaces `{socket}`, `{port}` and `{worker}` in one argument. `{port}` stays as it is when the
/// worker has no port (it then has a socket).
fn substitute(arg: &str, socket: &str, port: Option<&str>, slot: usize) -> String {
    let arg = arg
        .replace("{socket}", socket)
        .replace("{worker}", &slot.to_string());
    match port {
        Some(port) => arg.replace("{port}", port),
        None => arg,
    }
}

/// The variables every worker gets (the app's `env` is added after, and may override them).
///
/// `GATEHOUSE_SOCKET` and `PORT` are set only for the endpoint the worker must bind: Gunicorn (and
/// many apps) bind `$PORT` when it is set, which would be wrong for a worker expected on a socket.
fn worker_env(endpoint: &Endpoint, slot: usize) -> BTreeMap<&'static str, String> {
    let mut env = BTreeMap::new();
    match endpoint {
        Endpoint::Unix(path) => {
            env.insert("GATEHOUSE_SOCKET", path.to_string_lossy().into_owned());
        }
        Endpoint::Tcp(hostport) => {
            if let Some(port) = hostport.rsplit(':').next() {
                env.insert("PORT", port.to_owned());
            }
        }
    }
    env.insert("GATEHOUSE_WORKER", slot.to_string());
    // A SIGABRT on a request deadline then prints the stuck Python stack.
    env.insert("PYTHONFAULTHANDLER", "1".to_owned());
    // Output reaches the log line by line, not when a buffer fills.
    env.insert("PYTHONUNBUFFERED", "1".to_owned());
    env
}

/// A loopback port free right now. Another process may take it before the worker binds it; the
/// worker then fails to start and is retried on a new port.
fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Creates `runtime_dir` (traversable, so that a worker user can reach its own directory) and the
/// app's directory (private: 0700, owned by the worker user when there is one).
fn prepare_dir(runtime_dir: &Path, dir: &Path, identity: Option<Identity>) -> io::Result<()> {
    if !runtime_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(runtime_dir)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if let Some(identity) = identity {
        std::os::unix::fs::chown(dir, identity.uid, identity.gid)?;
    }
    Ok(())
}

/// `user` and `group` as ids, or `None` when they do not apply (not set, or gatehouse is not root).
fn resolve_identity(app: &App) -> Result<Option<Identity>, Error> {
    if app.user.is_none() && app.group.is_none() {
        return Ok(None);
    }
    if !sys::is_root() {
        tracing::warn!(
            app = %app.name,
            "`user` and `group` apply only when gatehouse runs as root; workers run as gatehouse's user"
        );
        return Ok(None);
    }
    let lookup = |source| Error::Lookup {
        app: app.name.clone(),
        source,
    };
    let (uid, primary_gid) = match &app.user {
        None => (None, None),
        Some(user) => match user.parse::<u32>() {
            Ok(uid) => (Some(uid), None),
            Err(_) => match user_by_name(user).map_err(lookup)? {
                Some((uid, gid)) => (Some(uid), Some(gid)),
                None => {
                    return Err(Error::UnknownUser {
                        app: app.name.clone(),
                        user: user.clone(),
                    })
                }
            },
        },
    };
    let gid = match &app.group {
        None => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => Some(gid),
            Err(_) => match group_by_name(group).map_err(lookup)? {
                Some(gid) => Some(gid),
                None => {
                    return Err(Error::UnknownGroup {
                        app: app.name.clone(),
                        group: group.clone(),
                    })
                }
            },
        },
    };
    Ok(Some(Identity { uid, gid }))
}

/// A user's uid and primary gid from the passwd database; `None` when there is no such user.
fn user_by_name(name: &str) -> std::io::Result<Option<(u32, u32)>> {
    let user = nix::unistd::User::from_name(name).map_err(std::io::Error::from)?;
    Ok(user.map(|user| (user.uid.as_raw(), user.gid.as_raw())))
}

/// A group's gid from the group database; `None` when there is no such group.
fn group_by_name(name: &str) -> std::io::Result<Option<u32>> {
    let group = nix::unistd::Group::from_name(name).map_err(std::io::Error::from)?;
    Ok(group.map(|group| group.gid.as_raw()))
}

type Job = Box<dyn FnOnce() + Send>;

/// Spawns `command` on the fork thread (see the module header), within the caller's runtime.
async fn fork(mut command: Command) -> io::Result<Child> {
    let runtime = tokio::runtime::Handle::current();
    let (reply, spawned) = oneshot::channel();
    let job: Job = Box::new(move || {
        // The child registers with this runtime's process driver.
        let _entered = runtime.enter();
        let _ = reply.send(command.spawn());
    });
    let unsent = match fork_thread() {
        Some(thread) => thread
            .send(job)
            .err()
            .map(|std::sync::mpsc::SendError(job)| job),
        None => Some(job),
    };
    if let Some(job) = unsent {
        // No fork thread: fork here, and accept the PDEATHSIG caveat.
        job();
    }
    spawned
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the fork thread is gone")))
}

/// The one thread that forks every worker; it lives as long as the process.
fn fork_thread() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static THREAD: OnceLock<Option<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (jobs, queue) = std::sync::mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("gatehouse-fork".to_owned())
                .spawn(move || {
                    for job in queue {
                        job();
                    }
                });
            match started {
                Ok(_) => Some(jobs),
                Err(err) => {
                    let why = "cannot start the fork thread; forking on runtime threads";
                    tracing::warn!(error = %err, "{why}");
                    None
                }
            }
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_user_and_group_resolve() {
        assert_eq!(user_by_name("root").unwrap(), Some((0, 0)));
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert_eq!(user_by_name("no-such-user-gatehouse").unwrap(), None);
        assert_eq!(group_by_name("no-such-group-gatehouse").unwrap(), None);
    }

    #[test]
    fn placeholders_are_substituted_in_every_argument() {
        assert_eq!(
            substitute("unix:{socket}", "/run/g/web/w3.sock", None, 2),
            "unix:/run/g/web/w3.sock"
        );
        assert_eq!(
            substitute("--bind=127.0.0.1:{port}", "/s", Some("8001"), 0),
            "--bind=127.0.0.1:8001"
        );
        assert_eq!(substitute("w{worker}-{worker}", "/s", None, 7), "w7-7");
        assert_eq!(substitute("{port}", "/s", None, 0), "{port}");
        assert_eq!(substitute("plain", "/s", Some("1"), 0), "plain");
    }

    #[test]
    fn env_names_only_the_endpoint_to_bind() {
        let unix = worker_env(&Endpoint::Unix(PathBuf::from("/r/a/w1.sock")), 3);
        assert_eq!(unix["GATEHOUSE_SOCKET"], "/r/a/w1.sock");
        assert_eq!(unix["GATEHOUSE_WORKER"], "3");
        assert_eq!(unix["PYTHONFAULTHANDLER"], "1");
        assert!(!unix.contains_key("PORT"));
        let tcp = worker_env(&Endpoint::Tcp("127.0.0.1:9000".into()), 0);
        assert_eq!(tcp["PORT"], "9000");
        assert!(!tcp.contains_key("GATEHOUSE_SOCKET"));
    }
}
