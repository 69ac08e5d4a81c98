//! Watching a listener's certificate files for rotation.
//!
//! We watch *directories*, not files: certbot replaces its `live/` symlinks and Kubernetes swaps a
//! secret's `..data` symlink, and neither touches the file we were given, so a watch on the file
//! itself would never fire (or would follow a deleted inode). Any event in a watched directory
//! rings a doorbell; after the directory has been quiet for [`QUIET`] (writers replace a cert and
//! its key one after the other), or at the latest [`MAX_DELAY`] after the first event (a busy log
//! file in the same directory must not postpone rotation forever), every pair is re-read and those
//! whose content changed are swapped in (`Tls::rotate`). Unchanged content is a no-op, so a false
//! alarm costs two small file reads.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::DirWatch;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Tls;

const QUIET: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Watching goes on while this lives.
pub struct Watch {
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `tls`'s certificate directories. Must run inside the tokio runtime.
pub(super) fn start(tls: Arc<Tls>) -> notify::Result<Watch> {
    // Capacity 1 and `try_send`: events that arrive while one is pending coalesce.
    let (doorbell, rings) = mpsc::channel(1);
    let doorbell_for_start = doorbell.clone();
    let dirs = DirWatch::new(move || {
        let _ = doorbell.try_send(());
    })?;
    let mut watching = Watching { tls, dirs };
    watching.update_dirs();
    // One look once the watches are in place, for a change between loading and watching.
    let _ = doorbell_for_start.try_send(());
    Ok(Watch {
        task: tokio::spawn(watching.run(rings)),
    })
}

struct Watching {
    tls: Arc<Tls>,
    dirs: DirWatch,
}

impl Watching {
    async fn run(mut self, mut rings: mpsc::Receiver<()>) {
        while rings.recv().await.is_some() {
            let first = Instant::now();
            loop {
                let wait = QUIET.min(MAX_DELAY.saturating_sub(first.elapsed()));
                match tokio::time::timeout(wait, rings.recv()).await {
                    Err(_) => break,
                    Ok(None) => return,
                    Ok(Some(())) if first.elapsed() >= MAX_DELAY => break,
                    Ok(Some(())) => {}
                }
            }
            let tls = Arc::clone(&self.tls);
            // File reads and key parsing: off the async threads.
            if tokio::task::spawn_blocking(move || tls.rotate())
                .await
                .is_err()
            {
                tracing::error!(listener = %self.tls.listener, "certificate rotation check failed");
            }
            self.update_dirs();
        }
    }

    /// Watches the directories the files are in now (a rotation can move a symlink's target to a
    /// new directory) and forgets those no longer needed.
    fn update_dirs(&mut self) {
        let wanted: HashSet<PathBuf> = self.tls.watched_dirs().into_iter().collect();
        for (dir, error) in self.dirs.watch_only(wanted) {
            tracing::warn!(listener = %self.tls.listener, dir = %dir.display(), %error, "cannot watch a certificate directory");
        }
    }
}
