//! Watching the config file for changes.
//!
//! We watch the file's *directory*, not the file: editors save by writing a new file and renaming
//! it over the old one, `mv` replaces the inode, and Kubernetes swaps a ConfigMap's `..data`
//! symlink; none of them touches the inode a watch on the file would follow. When the path is a
//! symlink, the directory of its target is watched too (it may live elsewhere).
//!
//! Any event in a watched directory rings the caller's doorbell. Deciding whether the file really
//! changed (its content, not its directory's other files) and waiting for a burst of events to
//! end is the caller's business; this module only reports that something may have happened.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::Error;

/// Watching goes on while this lives.
pub struct ConfigWatch {
    path: PathBuf,
    watcher: RecommendedWatcher,
    dirs: HashSet<PathBuf>,
}

impl ConfigWatch {
    /// Starts watching the directories of `path` (and of its symlink target). `ring` is called
    /// from the watcher's own thread on every event that may be a change.
    pub fn start(path: &Path, ring: impl Fn() + Send + 'static) -> Result<ConfigWatch, Error> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(event) => !matches!(event.kind, EventKind::Access(_)),
                // The kernel dropped events (queue overflow): look, to be safe.
                Err(_) => true,
            };
            if relevant {
                ring();
            }
        })
        .map_err(|source| Error::Watch {
            path: path.to_path_buf(),
            source,
        })?;
        let mut watch = ConfigWatch {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            watcher,
            dirs: HashSet::new(),
        };
        watch.refresh()?;
        Ok(watch)
    }

    /// Watches the directories the file is in now (a symlink swap can move its target) and stops
    /// watching those no longer needed. Fails only when the file's own directory cannot be watched.
    pub fn refresh(&mut self) -> Result<(), Error> {
        let own_dir = self
            .path
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let mut wanted = HashSet::from([own_dir.clone()]);
        if let Some(target_dir) = std::fs::canonicalize(&self.path)
            .ok()
            .and_then(|target| target.parent().map(Path::to_path_buf))
        {
            wanted.insert(target_dir);
        }
        for gone in self.dirs.difference(&wanted) {
            // The directory may be deleted already, which removed the watch with it.
            let _ = self.watcher.unwatch(gone);
        }
        let mut watched = HashSet::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(source) if dir == own_dir => {
                    self.dirs = watched;
                    return Err(Error::Watch { path: dir, source });
                }
                // A target directory that vanished between the lookup and the watch: the next
                // event in the file's own directory brings us back here.
                Err(_) => {}
            }
        }
        self.dirs = watched;
        Ok(())
    }
}
