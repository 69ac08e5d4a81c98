//! The file model: the TOML file exactly as written, deserialized by serde.
//!
//! Unknown keys are errors everywhere (`deny_unknown_fields`). Almost every key is optional here,
//! even the required ones, and numbers are TOML's `i64`: checking presence and ranges is
//! `validate`'s job, which reports every problem at once where serde would stop at the first.
//! Field names are the TOML keys; section and array names are singular as in the file
//! (`[[route]]` is `route`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::units::{Duration, Size};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub listener: Vec<Listener>,
    #[serde(default)]
    pub app: Vec<App>,
    #[serde(default)]
    pub upstream: Vec<Upstream>,
    #[serde(default)]
    pub route: Vec<Route>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub pid_file: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub graceful_timeout: Option<Duration>,
    pub watch_config: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// An IP:PORT, or `"off"`.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access_log: Option<String>,
    pub access_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_header_bytes: Option<Size>,
    pub max_header_count: Option<i64>,
    pub max_body_size: Option<Size>,
    pub header_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub websocket_idle_timeout: Option<Duration>,
    pub max_connections: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: Option<String>,
    pub http2: Option<bool>,
    pub redirect_https: Option<String>,
    pub tls: Option<Tls>,
}

/// `[listener.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certificates: Option<Vec<CertificatePair>>,
    pub min_version: Option<TlsVersion>,
    pub hsts: Option<String>,
    pub client_ca: Option<PathBuf>,
}

/// One `{ cert = "...", key = "..." }` of `certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: Option<String>,
    pub command: Option<Vec<String>>,
    pub wsgi: Option<String>,
    pub python: Option<String>,
    pub directory: Option<PathBuf>,
    pub env: Option<BTreeMap<String, EnvValue>>,
    pub workers: Option<Workers>,
    pub concurrency: Option<i64>,
    pub timeout: Option<Duration>,
    pub graceful_timeout: Option<Duration>,
    pub max_requests: Option<i64>,
    pub max_requests_jitter: Option<i64>,
    pub max_memory: Option<Size>,
    pub startup_timeout: Option<Duration>,
    pub queue_size: Option<i64>,
    pub queue_timeout: Option<Duration>,
    pub health: Option<Health>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub root_path: Option<String>,
    pub buffering: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: Option<String>,
    pub servers: Option<Vec<String>>,
    pub connect_timeout: Option<Duration>,
    pub timeout: Option<Duration>,
    pub health: Option<Health>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub path: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub failures: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub host: Option<String>,
    pub path: Option<String>,
    pub strip_prefix: Option<bool>,
    #[serde(rename = "static")]
    pub static_: Option<Static>,
    pub app: Option<String>,
    pub upstream: Option<String>,
    pub redirect: Option<String>,
    pub respond: Option<Respond>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Static {
    pub root: Option<PathBuf>,
    pub index: Option<Vec<String>>,
    pub cache_control: Option<String>,
    pub precompressed: Option<bool>,
    pub dotfiles: Option<bool>,
    pub fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    pub status: Option<i64>,
    pub body: Option<String>,
}

/// `workers = 3` or `workers = "auto"`; anything else is reported by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workers {
    Count(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Workers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of workers or \"auto\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Workers, E> {
                Ok(Workers::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Workers, E> {
                Ok(Workers::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Workers, E> {
                Ok(Workers::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `min_version = "1.3"`; the number `1.3` is taken too, since that is what people type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsVersion(pub String);

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                Ok(TlsVersion(v.to_owned()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                Ok(TlsVersion(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An environment value. Numbers and booleans are accepted and turned into their TOML text,
/// because `PYTHONUNBUFFERED = 1` is what people write.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}
