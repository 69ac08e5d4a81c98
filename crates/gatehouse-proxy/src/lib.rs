//! gatehouse's HTTP edge: listeners, connections, routing, static files, forwarding to upstreams,
//! and the access log. Modules read in the order a request meets them (see
//! `docs/request-lifecycle.md`): `listener` → `conn_io` → `service` → `route` → `static_files` |
//! `upstream` + `forward` → `access_log`.

pub mod body;
pub mod error;
pub mod forward;
pub mod static_files;
pub mod upstream;
