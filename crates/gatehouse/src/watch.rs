//! The config file's watch as the serving loop sees it (`[server] watch_config`).
//!
//! [`gatehouse_config::ConfigWatch`] rings on any event in the file's directory. Here a burst of
//! rings is debounced (an editor's rename-save, a ConfigMap's symlink swap and `mv` each make
//! several events): the burst has settled once the directory has been quiet for [`QUIET`], or
//! at the latest [`MAX_DELAY`] after its first event (a busy log file in the same directory must
//! not postpone reloads forever). Then the file's content decides: a reload is wanted only when
//! its digest differs from the content last loaded or tried, so a touch, an unrelated file or an
//! invalid file saved once are not reloaded over and over. A deleted file keeps the running
//! config, with a warning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_config::{Config, ConfigWatch};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::reload::{self, Digest};

const QUIET: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(1);

pub struct FileWatcher {
    path: PathBuf,
    watch: Option<ConfigWatch>,
    doorbell: mpsc::Sender<()>,
    rings: mpsc::Receiver<()>,
    /// First and last ring of the burst being debounced; `None` when quiet.
    burst: Option<(Instant, Instant)>,
    /// The digest of the content last loaded or tried.
    tried: Option<Digest>,
    /// The file is gone and that was logged once.
    missing: bool,
}

impl FileWatcher {
    /// Watches `path` when `config` (loaded from content with `digest`) asks for it.
    pub fn new(path: &Path, config: &Config, digest: Digest) -> FileWatcher {
        // Capacity 1 and `try_send`: rings that arrive while one is pending coalesce.
        let (doorbell, rings) = mpsc::channel(1);
        let mut watcher = FileWatcher {
            path: path.to_path_buf(),
            watch: None,
            doorbell,
            rings,
            burst: None,
            tried: Some(digest),
            missing: false,
        };
        watcher.configure(config);
        // One look once the watch is in place, for an edit between loading and watching.
        let _ = watcher.doorbell.try_send(());
        watcher
    }

    /// Follows `[server] watch_config` of the config now running, and re-aims the watch at the
    /// directories the file is in now (a symlink swap may have moved its target).
    pub fn configure(&mut self, config: &Config) {
        if !config.server.watch_config {
            if self.watch.take().is_some() {
                tracing::info!("no longer watching the config file");
            }
            return;
        }
        let result = match &mut self.watch {
            Some(watch) => watch.refresh(),
            None => {
                let doorbell = self.doorbell.clone();
                ConfigWatch::start(&self.path, move || {
                    let _ = doorbell.try_send(());
                })
                .map(|watch| {
                    self.watch = Some(watch);
                })
            }
        };
        if let Err(error) = result {
            tracing::warn!(error = %error, source = ?std::error::Error::source(&error),
                "the config file is not watched; send HUP to reload it");
        }
    }

    /// Returns once a burst of events has settled. Cancel-safe: a ring received is remembered.
    pub async fn settled(&mut self) {
        loop {
            let deadline = self
                .burst
                .map(|(first, last)| (last + QUIET).min(first + MAX_DELAY));
            let ring = async {
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, self.rings.recv()).await,
                    None => Ok(self.rings.recv().await),
                }
            };
            match ring.await {
                Ok(Some(())) => {
                    let now = Instant::now();
                    let first = self.burst.map_or(now, |(first, _)| first);
                    self.burst = Some((first, now));
                }
                // The doorbell lives in `self`, so the channel never closes.
                Ok(None) => std::future::pending::<()>().await,
                Err(_elapsed) => {
                    self.burst = None;
                    return;
                }
            }
        }
    }

    /// After a burst: whether the file's content is new (neither running nor tried before).
    pub async fn changed(&mut self) -> bool {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => {
                self.missing = false;
                let digest = reload::digest(&bytes);
                self.tried != Some(digest)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if !self.missing {
                    tracing::warn!(
                        "the config file {} was removed; the running config stays",
                        self.path.display()
                    );
                    self.missing = true;
                }
                false
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the config file {}", self.path.display());
                false
            }
        }
    }

    /// A reload read content with `digest` (applied or rejected): do not try it again.
    pub fn tried(&mut self, digest: Digest) {
        self.tried = Some(digest);
    }
}
