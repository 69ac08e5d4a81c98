//! The `/status` document: apps, their queues and workers, and the config in effect. The same
//! types read it back in `gatehouse status`, so the producer and the consumer cannot drift.
//!
//! A worker's `state` is the supervisor's (`starting`, `ready`, `draining`), or `busy` for a
//! ready worker with every slot in use (`in_flight` ≥ the app's `concurrency`); `requests` and
//! `in_flight` come from the proxy's pool, which counts them.

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use gatehouse_supervisor::WorkerState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppView;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub apps: Vec<App>,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    /// Requests waiting for a worker slot now.
    pub queue_depth: usize,
    pub workers: Vec<Worker>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub pid: u32,
    /// `starting`, `ready`, `busy` or `draining`.
    pub state: String,
    pub generation: u64,
    /// Requests the proxy sent to this worker so far.
    pub requests: u64,
    pub in_flight: usize,
    /// The RSS of the worker's whole process group; `null` when /proc could not tell.
    pub rss_bytes: Option<u64>,
    pub age_seconds: u64,
    /// Workers of this slot replaced so far, for any reason.
    pub restarts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub path: String,
    /// SHA-256 of the file as last loaded successfully (hex); `null` if it could not be read back.
    pub hash: Option<String>,
    pub last_reload: Reload,
}

/// The last load of the config: the start, or the latest reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reload {
    /// `success` or `failure`.
    pub result: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// Why a failed reload was rejected (the old config keeps serving).
    pub error: Option<String>,
}

/// The states `app_workers{state}` counts, in this order.
pub const STATES: [&str; 4] = ["starting", "ready", "busy", "draining"];

impl App {
    pub(super) fn of(app: &AppView) -> App {
        App {
            name: app.pool.name().to_owned(),
            queue_depth: app.pool.queue_depth(),
            workers: workers(app),
        }
    }
}

/// The supervisor's workers with the pool's counts, in slot order.
pub(super) fn workers(app: &AppView) -> Vec<Worker> {
    let loads = app.pool.workers();
    let concurrency = app.pool.concurrency();
    app.supervisor
        .status()
        .into_iter()
        .map(|worker| {
            let load = loads.iter().find(|load| load.id == worker.id);
            let in_flight = load.map_or(0, |load| load.in_flight);
            let state = match worker.state {
                WorkerState::Ready if in_flight >= concurrency => "busy",
                state => state.as_str(),
            };
            Worker {
                pid: worker.pid,
                state: state.to_owned(),
                generation: worker.generation,
                requests: load.map_or(0, |load| load.served),
                in_flight,
                rss_bytes: worker.rss_bytes,
                age_seconds: worker.age.as_secs(),
                restarts: worker.restarts,
            }
        })
        .collect()
}

impl Config {
    /// The config gatehouse started with, loaded at `at`.
    pub(super) fn loaded(config: &gatehouse_config::Config, at: SystemTime) -> Config {
        Config {
            path: config.path.display().to_string(),
            hash: hash(&config.path),
            last_reload: Reload {
                result: "success".to_owned(),
                at: rfc3339(at),
                error: None,
            },
        }
    }

    pub(super) fn reloaded(
        &mut self,
        result: Result<&gatehouse_config::Config, &str>,
        at: SystemTime,
    ) {
        self.last_reload = match result {
            Ok(config) => {
                self.path = config.path.display().to_string();
                self.hash = hash(&config.path);
                Reload {
                    result: "success".to_owned(),
                    at: rfc3339(at),
                    error: None,
                }
            }
            Err(error) => Reload {
                result: "failure".to_owned(),
                at: rfc3339(at),
                error: Some(error.to_owned()),
            },
        };
    }
}

/// The file read back right after it was loaded; a change in between shows as a new hash at the
/// next reload, which is what an operator comparing hashes needs.
fn hash(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let digest = Sha256::digest(&bytes);
    Some(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn rfc3339(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_pinned_shape() {
        let status = Status {
            apps: vec![App {
                name: "web".into(),
                queue_depth: 2,
                workers: vec![Worker {
                    pid: 42,
                    state: "busy".into(),
                    generation: 1,
                    requests: 7,
                    in_flight: 1,
                    rss_bytes: None,
                    age_seconds: 3,
                    restarts: 0,
                }],
            }],
            config: Config {
                path: "/etc/gatehouse.toml".into(),
                hash: Some("ab".into()),
                last_reload: Reload {
                    result: "failure".into(),
                    at: rfc3339(SystemTime::UNIX_EPOCH),
                    error: Some("bad".into()),
                },
            },
        };
        let value = serde_json::to_value(&status).unwrap();
        let worker = &value["apps"][0]["workers"][0];
        for key in [
            "pid",
            "state",
            "generation",
            "requests",
            "in_flight",
            "rss_bytes",
            "age_seconds",
            "restarts",
        ] {
            assert!(worker.get(key).is_some(), "worker.{key}");
        }
        assert_eq!(value["apps"][0]["queue_depth"], 2);
        assert_eq!(value["config"]["last_reload"]["at"], "1970-01-01T00:00:00Z");
        let back: Status = serde_json::from_value(value).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn hashes_the_file() {
        let file = std::env::temp_dir().join(format!("gatehouse-hash-{}", std::process::id()));
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(
            hash(&file).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(hash(&file), None);
    }
}
