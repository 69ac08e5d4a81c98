//! `gatehouse run`: load the config (before binding anything), bind every listener, start the
//! apps' workers, serve, and turn signals into actions:
//! TERM drains gracefully, INT and QUIT stop at once, HUP re-reads the config and rolls every
//! app's workers, TTIN/TTOU add or remove a worker per app, USR1 reopens the access log.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use gatehouse_config::Config;
use gatehouse_proxy::{AccessLog, Listener, Proxy, Site};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::apps::{self, Apps};
use crate::{check, logging, EXIT_CONFIG_ERROR, EXIT_RUNTIME_FAILURE};

pub fn run(path: &Path) -> ExitCode {
    let config = match gatehouse_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}", check::describe(&error));
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    logging::init(&config.log);
    check::log_warnings(&config);
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
    let result = runtime.block_on(serve(path.to_path_buf(), config));
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

/// How the serving loop ended.
enum Stop {
    Graceful,
    Quick,
}

type Rolling<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

async fn serve(path: PathBuf, config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let access_log = AccessLog::start(&config.log.access_log, &config.log.access_format)
        .context("cannot open the access log")?;

    // Bind first: a taken port should fail the start before any worker is spawned.
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for listener_config in &config.listeners {
        let listener = Listener::bind(listener_config)
            .with_context(|| format!("cannot listen on {}", listener_config.address))?;
        listeners.push(listener);
    }
    let mut admin = Admin::bind(&config)?;
    let (apps, mut app_events) = Apps::start(&config, std::env::temp_dir())?;
    let proxy = Proxy::new(
        Site::new(&config, &apps.pools()),
        access_log,
        admin.proxy_metrics(),
    );
    let pid_file = PidFile::create(config.server.pid_file.as_deref())?;

    let tls = listeners
        .iter()
        .filter_map(|listener| {
            let tls = listener.tls()?;
            Some((listener.local_addr().to_owned(), Arc::clone(tls)))
        })
        .collect();
    let (stop_sender, stop) = watch::channel(false);
    let mut serving = JoinSet::new();
    for listener in listeners {
        tracing::info!("listening on {}", listener.local_addr());
        serving.spawn(listener.serve(Arc::clone(&proxy), stop.clone()));
    }
    admin.serve(apps.views(), tls)?;

    let mut graceful_timeout = config.server.graceful_timeout;
    // A HUP's worker roll runs alongside the loop, so timeouts and signals are handled meanwhile.
    let mut rolling: Option<Rolling<'_>> = None;
    let ending = loop {
        tokio::select! {
            event = signals.next() => match event {
                Event::Terminate => break Stop::Graceful,
                Event::Quit => break Stop::Quick,
                Event::Reload => {
                    let reloaded = reload(&path, &proxy, &apps);
                    admin.reloaded(reloaded.as_ref().map_err(String::as_str));
                    if let Ok(config) = reloaded {
                        graceful_timeout = config.server.graceful_timeout;
                        let apps = &apps;
                        // A newer HUP supersedes a roll in progress, as in the supervisor.
                        rolling = Some(Box::pin(async move { apps.roll(&config).await }));
                    }
                }
                Event::AddWorker => apps.scale(1),
                Event::RemoveWorker => apps.scale(-1),
                Event::ReopenLogs => {
                    tracing::info!("reopening log files");
                    proxy.access_log().reopen();
                }
            },
            Some(event) = app_events.recv() => apps.handle(event),
            () = async { if let Some(roll) = rolling.as_mut() { roll.await } else { std::future::pending().await } } => {
                rolling = None;
            }
        }
    };
    // First thing on the way out: probes must see /readyz fail before the listeners close.
    admin.draining();
    drop(rolling);

    let _ = stop_sender.send(true);
    match ending {
        Stop::Graceful => {
            tracing::info!(timeout = ?graceful_timeout, "draining: finishing in-flight requests");
            let drained = tokio::time::timeout(graceful_timeout, async {
                while serving.join_next().await.is_some() {}
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    open = proxy.open_connections(),
                    "graceful timeout passed; closing the connections left"
                );
            }
            apps.shutdown(true).await;
            tracing::info!("stopped");
        }
        Stop::Quick => {
            tracing::info!("stopping now");
            apps.shutdown(false).await;
        }
    }
    drop(pid_file);
    Ok(())
}

/// Re-reads the config. A valid one replaces routes, static settings, limits and the access log,
/// and is returned so the apps can roll to it; an invalid one is logged, changes nothing, and its
/// reason is returned.
fn reload(path: &Path, proxy: &Proxy, apps: &Apps) -> Result<Config, String> {
    let config = match gatehouse_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            let reason = check::describe(&error);
            tracing::error!("reload rejected, the old config keeps serving:\n{reason}");
            return Err(reason);
        }
    };
    check::log_warnings(&config);
    let access_log = match AccessLog::start(&config.log.access_log, &config.log.access_format) {
        Ok(access_log) => access_log,
        Err(error) => {
            tracing::error!(%error, "reload rejected: cannot open the access log");
            return Err(format!("cannot open the access log: {error}"));
        }
    };
    for app in apps::missing(apps, &config) {
        tracing::warn!(app = %app.name, "new apps start at the next start; requests to it get 503");
    }
    proxy.replace_site(Site::new(&config, &apps.pools()));
    proxy.replace_access_log(access_log);
    tracing::info!(
        "config reloaded; rolling app workers (listener changes take effect at the next start)"
    );
    Ok(config)
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
