//! The supervisor's one error type.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("app {app}: cannot write the built-in WSGI worker into {path}")]
    WsgiProgram {
        app: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("app {app}: `command` is empty")]
    EmptyCommand { app: String },

    #[error("app name {name:?} cannot name a directory")]
    BadName { name: String },

    #[error("socket path {path} is longer than the {max} bytes a Unix socket address holds; choose a shorter runtime_dir")]
    SocketPathTooLong { path: PathBuf, max: usize },

    #[error("runtime directory {path}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("app {app}: unknown user {user:?}")]
    UnknownUser { app: String, user: String },

    #[error("app {app}: unknown group {group:?}")]
    UnknownGroup { app: String, group: String },

    #[error("app {app}: looking up user or group")]
    Lookup {
        app: String,
        #[source]
        source: io::Error,
    },

    #[error("app {app}: spawning {program:?}")]
    Spawn {
        app: String,
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("app {app}: the new generation did not become ready: {reason}; the old workers keep serving")]
    RollFailed { app: String, reason: String },

    #[error("app {app}: a newer roll replaced this one")]
    RollSuperseded { app: String },

    #[error("an app cannot be renamed by a roll ({from} to {to}); start a new supervisor")]
    Renamed { from: String, to: String },

    #[error("the supervisor is shutting down")]
    ShuttingDown,

    #[error("the supervisor has stopped")]
    Stopped,

    #[error("the supervisor must be started within a tokio runtime")]
    NoRuntime,
}
