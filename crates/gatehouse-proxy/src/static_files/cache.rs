//! Validated lookups, remembered: a bounded map from the path a request names to what
//! [`path::confine`] found there, plus the bytes of small files.
//!
//! A hit costs one `stat` of the requested path. The entry is used only when that `stat` shows
//! the very file that was validated (same device, inode, length and mtime), so a file replaced by
//! a symlink out of the root, or a directory swapped for another, is a miss and is validated
//! again in full. Without this every request would pay `canonicalize`, a syscall per component.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;

use super::path::{self, Rejection};

/// Files up to this size are read in one go on the async thread and kept in memory.
pub(super) const SMALL_FILE: u64 = 64 * 1024;
/// Memory for cached file bytes, per static route.
const CAPACITY_BYTES: usize = 16 * 1024 * 1024;
/// Entries (files and directories), per static route: bounds the map for sites with many large files.
const CAPACITY_ENTRIES: usize = 16 * 1024;

/// What tells one version of a file from another without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    /// Modification time in nanoseconds since the epoch (negative before it).
    pub mtime_ns: i128,
}

impl Identity {
    pub fn of(metadata: &Metadata) -> Self {
        Identity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

/// A validated file or directory.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub identity: Identity,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Dir,
    File {
        /// Canonical path, opened when the bytes are not cached.
        canonical: Arc<Path>,
        /// The whole content of a small file once it has been read.
        bytes: Option<Bytes>,
    },
}

#[derive(Default)]
pub(super) struct Cache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<PathBuf, Slot>,
    bytes: usize,
}

#[derive(Clone)]
enum Slot {
    Found(Entry),
    /// A precompressed sibling that did not exist: a failing `stat` confirms it is still absent,
    /// which is far cheaper than a failing `canonicalize` on every request.
    Absent,
}

impl Cache {
    /// Validates `target` (`root` joined with [`path::lexical`]'s result), from memory when the
    /// file on disk is still the one validated before.
    pub fn find(&self, root: &Path, target: &Path, dotfiles: bool) -> Result<Entry, Rejection> {
        self.lookup(root, target, dotfiles, false)
    }

    /// Like [`Cache::find`], for a `.br` / `.gz` sibling that most sites do not have: its
    /// absence is remembered too.
    pub fn find_sibling(&self, root: &Path, target: &Path, dotfiles: bool) -> Option<Entry> {
        self.lookup(root, target, dotfiles, true).ok()
    }

    fn lookup(
        &self,
        root: &Path,
        target: &Path,
        dotfiles: bool,
        remember_absence: bool,
    ) -> Result<Entry, Rejection> {
        // Cloned out so the lock is not held across the `stat`.
        let cached = self.read().slots.get(target).cloned();
        if let Some(slot) = cached {
            match (slot, std::fs::metadata(target)) {
                (Slot::Found(entry), Ok(metadata)) if Identity::of(&metadata) == entry.identity => {
                    return Ok(entry)
                }
                (Slot::Absent, Err(error)) => return Err(Rejection::NotFound(error)),
                _ => {}
            }
        }
        let (canonical, metadata) = match path::confine(root, target, dotfiles) {
            Ok(found) => found,
            Err(rejection) => {
                if remember_absence && matches!(rejection, Rejection::NotFound(_)) {
                    self.store(target, Slot::Absent);
                }
                return Err(rejection);
            }
        };
        let kind = if metadata.is_dir() {
            Kind::Dir
        } else {
            Kind::File {
                canonical: canonical.into(),
                bytes: None,
            }
        };
        let entry = Entry {
            identity: Identity::of(&metadata),
            kind,
        };
        self.insert(target, entry.clone());
        Ok(entry)
    }

    /// Remembers `entry` for `target`, replacing an older one and evicting others to stay in bounds.
    pub fn insert(&self, target: &Path, entry: Entry) {
        self.store(target, Slot::Found(entry));
    }

    fn store(&self, target: &Path, slot: Slot) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.slots.remove(target) {
            inner.bytes -= weight(&old);
        }
        let needed = weight(&slot);
        if needed > CAPACITY_BYTES {
            return;
        }
        // HashMap order is arbitrary, which makes this a cheap, roughly random eviction.
        while inner.bytes + needed > CAPACITY_BYTES || inner.slots.len() >= CAPACITY_ENTRIES {
            let Some(victim) = inner.slots.keys().next().cloned() else {
                break;
            };
            if let Some(old) = inner.slots.remove(&victim) {
                inner.bytes -= weight(&old);
            }
        }
        inner.bytes += needed;
        inner.slots.insert(target.to_path_buf(), slot);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves a consistent map: every mutation is a
        // single insert or remove, so the data is still usable.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn weight(slot: &Slot) -> usize {
    match slot {
        Slot::Found(Entry {
            kind: Kind::File {
                bytes: Some(bytes), ..
            },
            ..
        }) => bytes.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_validated_again() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(base.join("outside"), "secret").unwrap();
        let target = root.join("f");
        std::fs::write(&target, "one").unwrap();
        let cache = Cache::default();
        let first = cache.find(&root, &target, false).unwrap();
        assert_eq!(
            first.identity,
            cache.find(&root, &target, false).unwrap().identity
        );
        std::fs::remove_file(&target).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), &target).unwrap();
        assert!(matches!(
            cache.find(&root, &target, false),
            Err(Rejection::Escapes)
        ));
    }

    #[test]
    fn an_absent_sibling_is_noticed_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let sibling = root.join("app.js.br");
        let cache = Cache::default();
        assert!(cache.find_sibling(&root, &sibling, false).is_none());
        assert!(cache.find_sibling(&root, &sibling, false).is_none());
        std::fs::write(&sibling, "br").unwrap();
        assert!(cache.find_sibling(&root, &sibling, false).is_some());
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = Cache::default();
        let chunk = Bytes::from(vec![0u8; SMALL_FILE as usize]);
        for n in 0..(CAPACITY_BYTES / chunk.len() * 2) {
            let entry = Entry {
                identity: Identity {
                    dev: 0,
                    ino: n as u64,
                    len: 0,
                    mtime_ns: 0,
                },
                kind: Kind::File {
                    canonical: Path::new("/x").into(),
                    bytes: Some(chunk.clone()),
                },
            };
            cache.insert(Path::new(&n.to_string()), entry);
        }
        let inner = cache.read();
        assert!(inner.bytes <= CAPACITY_BYTES);
        assert_eq!(inner.bytes, inner.slots.len() * chunk.len());
    }
}
