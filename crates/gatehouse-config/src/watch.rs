//! Watching files for changes: the config file (for hot reload) and, through [`DirWatch`], the
//! certificate files the proxy serves.
//!
//! We watch *directories*, not files: editors save by writing a new file and renaming it over the
//! old one, `mv` replaces the inode, certbot swaps its `live/` symlinks and Kubernetes swaps a
//! ConfigMap's or Secret's `..data` symlink; none of them touches the inode a watch on the file
//! would follow. When the config path is a symlink, the directory of its target is watched too
//! (it may live elsewhere).
//!
//! Any event in a watched directory rings the caller's doorbell. Deciding whether a file really
//! changed (its content, not its directory's other files) and waiting for a burst of events to
//! end is the caller's business; this module only reports that something may have happened.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::Error;

/// A set of watched directories that rings on every event in them; watching goes on while this
/// lives.
pub struct DirWatch {
    watcher: RecommendedWatcher,
    dirs: HashSet<PathBuf>,
}

impl DirWatch {
    /// Watches nothing yet. `ring` is called from the watcher's own thread on every event that
    /// may be a change.
    pub fn new(ring: impl Fn() + Send + 'static) -> notify::Result<DirWatch> {
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(event) => !matches!(event.kind, EventKind::Access(_)),
                // The kernel dropped events (queue overflow): look, to be safe.
                Err(_) => true,
            };
            if relevant {
                ring();
            }
        })?;
        Ok(DirWatch {
            watcher,
            dirs: HashSet::new(),
        })
    }

    /// Watches exactly `wanted` from now on; returns the directories that could not be watched,
    /// with why (a directory deleted meanwhile, say).
    pub fn watch_only(&mut self, wanted: HashSet<PathBuf>) -> Vec<(PathBuf, notify::Error)> {
        for gone in self.dirs.difference(&wanted) {
            // The directory may be deleted already, which removed the watch with it.
            let _ = self.watcher.unwatch(gone);
        }
        let mut watched = HashSet::new();
        let mut failed = Vec::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                watched.insert(dir);
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(error) => failed.push((dir, error)),
            }
        }
        self.dirs = watched;
        failed
    }
}

/// Watching the config file goes on while this lives.
pub struct ConfigWatch {
    path: PathBuf,
    dirs: DirWatch,
}

impl ConfigWatch {
    /// Starts watching the directories of `path` (and of its symlink target). `ring` is called
    /// from the watcher's own thread on every event that may be a change.
    pub fn start(path: &Path, ring: impl Fn() + Send + 'static) -> Result<ConfigWatch, Error> {
        let dirs = DirWatch::new(ring).map_err(|source| Error::Watch {
            path: path.to_path_buf(),
            source,
        })?;
        let mut watch = ConfigWatch {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            dirs,
        };
        watch.refresh()?;
        Ok(watch)
    }

    /// Watches the directories the file is in now (a symlink swap can move its target) and stops
    /// watching those no longer needed. Fails only when the file's own directory cannot be watched;
    /// a target directory that vanished between the lookup and the watch is looked up again at
    /// the next event in the file's own directory.
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
        let failed = self.dirs.watch_only(wanted);
        match failed.into_iter().find(|(dir, _)| *dir == own_dir) {
            Some((path, source)) => Err(Error::Watch { path, source }),
            None => Ok(()),
        }
    }
}
