//! `gatehouse run`: load the config (before binding anything), bind every listener, start the
//! apps' workers, serve, and turn signals and file changes into actions:
//! TERM drains gracefully, INT and QUIT stop at once, a change of the config file reloads it
//! (`reload.rs`), HUP reloads it and rolls every app's workers, TTIN/TTOU add or remove a worker
//! per app, USR1 reopens the access log. One reload runs at a time; triggers that arrive during
//! one are coalesced into one more.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use gatehouse_config::Config;
use gatehouse_proxy::{AccessLog, Proxy, Site};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::activation::Activation;
use crate::admin::Admin;
use crate::apps::{App, Apps};
use crate::listeners::{self, Listeners};
use crate::notify::Notifier;
use crate::reaper;
use crate::reload::{self, Digest, Trigger};
use crate::watch::FileWatcher;
use crate::{check, logging, EXIT_CONFIG_ERROR, EXIT_RUNTIME_FAILURE};

pub fn run(path: &Path) -> ExitCode {
    let (config, digest) = match load(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{}", check::describe(&error));
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    logging::init(&config.log);
    check::log_warnings(&config);
    // Both read and clear their environment variables (so workers do not inherit them): before
    // any other thread starts.
    let notifier = Arc::new(Notifier::from_env());
    let activation = match Activation::from_env() {
        Ok(activation) => activation,
        Err(error) => {
            tracing::error!("socket activation: {error:#}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gatehouse")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME_FAILURE);
        }
    };
    let result = runtime.block_on(serve(
        path.to_path_buf(),
        config,
        digest,
        notifier,
        activation,
    ));
    // Connections cut by a quick stop may still own blocking file reads; do not wait for them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::from(EXIT_RUNTIME_FAILURE)
        }
    }
}

/// Loads the config, with the digest of the bytes it was read from (for the file watcher).
fn load(path: &Path) -> Result<(Config, Digest), gatehouse_config::Error> {
    let read_error = |source| gatehouse_config::Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    let digest = reload::digest(&bytes);
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    Ok((gatehouse_config::parse(path, &text)?, digest))
}

/// How the serving loop ended.
enum Stop {
    Graceful,
    Quick,
}

/// What a reload changes: the running config and the parts built from it.
pub struct Instance {
    pub config: Arc<Config>,
    pub proxy: Arc<Proxy>,
    pub listeners: Listeners,
    pub apps: Apps,
    pub admin: Admin,
}

type Reloading = Pin<Box<dyn Future<Output = reload::Attempt> + Send>>;

async fn serve(
    path: PathBuf,
    config: Config,
    digest: Digest,
    notifier: Arc<Notifier>,
    mut activation: Activation,
) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    // Watching starts before anything is announced, so no edit after `listening on` is missed.
    let mut watcher = FileWatcher::new(&path, &config, digest);
    let access_log = AccessLog::start(&config.log.access_log, &config.log.access_format)
        .context("cannot open the access log")?;

    // Bind first: a taken port should fail the start before any worker is spawned.
    let bound = listeners::bind_all(&config.listeners, &mut activation)?;
    let admin = Admin::bind(&config)?;
    let (mut apps, mut app_events) =
        Apps::new(config.server.runtime_dir.clone(), std::env::temp_dir());
    for app in &config.apps {
        let started = apps.starter().start(app)?;
        apps.insert(started);
    }
    let proxy = Proxy::new(
        Site::new(&config, &apps.pools()),
        access_log,
        admin.proxy_metrics(),
    );
    let pid_file = PidFile::create(config.server.pid_file.as_deref())?;

    let mut listeners = Listeners::default();
    for (key, listener) in gatehouse_config::listener_keys(&config.listeners)
        .into_iter()
        .zip(bound)
    {
        listeners.serve(key, listener, &proxy);
    }
    let mut instance = Instance {
        config: Arc::new(config),
        proxy,
        listeners,
        apps,
        admin,
    };
    instance
        .admin
        .serve(instance.apps.views(), instance.listeners.tls())?;
    let watchdog = notifier.spawn_watchdog();
    let ready = tokio::spawn(notify_ready(Arc::clone(&notifier), instance.apps.all()));
    let reaper = reaper::needed().then(|| reaper::spawn(instance.admin.worker_pids()));

    let mut reloading: Option<Reloading> = None;
    // Triggers that arrive during a reload, coalesced into one reload after it (HUP wins).
    let mut pending: Option<Trigger> = None;
    let ending = loop {
        tokio::select! {
            event = signals.next() => match event {
                Event::Terminate => break Stop::Graceful,
                Event::Quit => break Stop::Quick,
                Event::Reload => pending = pending.max(Some(Trigger::Hangup)),
                Event::AddWorker => instance.apps.scale(1),
                Event::RemoveWorker => instance.apps.scale(-1),
                Event::ReopenLogs => {
                    tracing::info!("reopening log files");
                    instance.proxy.access_log().reopen();
                }
            },
            () = watcher.settled() => {
                if watcher.changed().await {
                    pending = pending.max(Some(Trigger::FileChanged));
                }
            }
            Some(event) = app_events.recv() => instance.apps.handle(event),
            attempt = async { match reloading.as_mut() { Some(reload) => reload.await, None => std::future::pending().await } } => {
                reloading = None;
                finish_reload(attempt, &mut instance, &mut watcher);
                // Before the first READY=1 (apps still starting), systemd hears nothing of
                // reloads: READY=1 would claim readiness too early.
                if ready.is_finished() {
                    notifier.ready();
                }
            }
        }
        if reloading.is_none() {
            if let Some(trigger) = pending.take() {
                // Events of a save that the reload just finished already read: nothing new.
                let stale = trigger == Trigger::FileChanged && !watcher.changed().await;
                if !stale {
                    if ready.is_finished() {
                        notifier.reloading();
                    }
                    reloading = Some(start_reload(&path, &instance, trigger));
                }
            }
        }
    };
    // First thing on the way out: probes must see /readyz fail before the listeners close.
    instance.admin.draining();
    notifier.stopping();
    ready.abort();
    drop(reloading);
    drop(watcher);

    let Instance {
        config,
        proxy,
        mut listeners,
        apps,
        admin,
    } = instance;
    listeners.stop_all();
    match ending {
        Stop::Graceful => {
            let graceful_timeout = config.server.graceful_timeout;
            tracing::info!(timeout = ?graceful_timeout, "draining: finishing in-flight requests");
            let drained = tokio::time::timeout(graceful_timeout, listeners.drained()).await;
            // `graceful_timeout` is the whole budget: once it has passed, the workers still busy
            // with abandoned requests are stopped at once rather than waited for again, so a
            // stop takes at most graceful_timeout and a few seconds (what service managers'
            // stop timeouts are set from).
            let graceful = drained.is_ok();
            if !graceful {
                tracing::warn!(
                    open = proxy.open_connections(),
                    "graceful timeout passed; closing the connections left and stopping the workers now"
                );
            }
            apps.shutdown(graceful).await;
            tracing::info!("stopped");
        }
        Stop::Quick => {
            tracing::info!("stopping now");
            apps.shutdown(false).await;
        }
    }
    drop(admin);
    drop(pid_file);
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(reaper) = reaper {
        reaper.abort();
    }
    Ok(())
}

/// `READY=1` once every app has a ready worker (the listeners are bound already).
async fn notify_ready(notifier: Arc<Notifier>, apps: Vec<Arc<App>>) {
    futures_util::future::join_all(apps.iter().map(|app| app.ready())).await;
    notifier.ready();
}

fn start_reload(path: &Path, instance: &Instance, trigger: Trigger) -> Reloading {
    tracing::info!(?trigger, "reloading {}", path.display());
    let running = reload::Running {
        config: Arc::clone(&instance.config),
        listeners: instance.listeners.handles(),
        starter: instance.apps.starter().clone(),
    };
    Box::pin(reload::prepare(path.to_path_buf(), running, trigger))
}

fn finish_reload(attempt: reload::Attempt, instance: &mut Instance, watcher: &mut FileWatcher) {
    if let Some(digest) = attempt.digest {
        watcher.tried(digest);
    }
    match attempt.result {
        Ok(prepared) => {
            let summary = reload::apply(prepared, instance);
            check::log_warnings(&instance.config);
            tracing::info!("reload applied: {summary}");
            watcher.configure(&instance.config);
        }
        Err(rejected) => {
            tracing::error!(
                "reload rejected, the running config keeps serving \
                 (edit the file again, or send HUP, to retry):\n{}",
                rejected.reason
            );
            instance.admin.reloaded(Err(&rejected.reason));
        }
    }
}

enum Event {
    Terminate,
    Quit,
    Reload,
    AddWorker,
    RemoveWorker,
    ReopenLogs,
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
    quit: Signal,
    hangup: Signal,
    user1: Signal,
    ttin: Signal,
    ttou: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
            ttin: signal(SignalKind::from_raw(libc::SIGTTIN))?,
            ttou: signal(SignalKind::from_raw(libc::SIGTTOU))?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.terminate.recv() => Event::Terminate,
            _ = self.interrupt.recv() => Event::Quit,
            _ = self.quit.recv() => Event::Quit,
            _ = self.hangup.recv() => Event::Reload,
            _ = self.user1.recv() => Event::ReopenLogs,
            _ = self.ttin.recv() => Event::AddWorker,
            _ = self.ttou.recv() => Event::RemoveWorker,
        }
    }
}

/// `[server] pid_file`: written once listeners are bound, removed on exit.
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn create(path: Option<&Path>) -> anyhow::Result<PidFile> {
        let Some(path) = path else {
            return Ok(PidFile(None));
        };
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pid file {}", path.display()))?;
        Ok(PidFile(Some(path.to_path_buf())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
