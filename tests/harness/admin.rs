//! The admin endpoint of a running gatehouse: its address (from the `admin listening on ADDR`
//! log line, so configs can use port 0), GETs, the Prometheus text parsed into samples, and
//! `promtool check metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::wait::DEADLINE;
use crate::Gatehouse;

/// Config text that turns the admin listener on at a port of the system's choosing. Without an
/// `[admin]` table the sandbox turns it off.
pub const ADMIN_ON: &str = "\n[admin]\nlisten = \"127.0.0.1:0\"\n";

/// The admin endpoint of one gatehouse.
pub struct Admin {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl Admin {
    /// Waits for gatehouse's `admin listening on ADDR` line.
    pub fn of(gatehouse: &Gatehouse) -> Admin {
        let line = gatehouse.wait_for_log("admin listening on ");
        let rest = &line[line.find("admin listening on ").expect("found above") + 19..];
        let token = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_matches(|c| matches!(c, '"' | '\'' | ','));
        let addr = token
            .parse()
            .unwrap_or_else(|e| panic!("admin address in {line:?}: {e}"));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .expect("build a reqwest client");
        Admin { addr, client }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// GET `path`: the status and the body, or the transport error as text.
    pub async fn try_get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://{}{path}", self.addr);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e:?}"))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{url}: body: {e:?}"))?;
        Ok((status, body))
    }

    /// GET `path`; panics on a transport error.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The status of `path` (`/readyz`, `/livez`).
    pub async fn status_of(&self, path: &str) -> u16 {
        self.get(path).await.0
    }

    /// A scrape of `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "/metrics: {text}");
        Metrics::parse(&text)
    }

    /// `/status`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        let (status, text) = self.get("/status").await;
        assert_eq!(status, 200, "/status: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {text}"))
    }
}

/// One scrape: every sample, keyed by metric name and labels.
#[derive(Debug, Clone)]
pub struct Metrics {
    text: String,
    samples: BTreeMap<Series, f64>,
}

/// A metric name and its labels (sorted by name).
pub type Series = (String, Vec<(String, String)>);

impl Metrics {
    /// Parses the Prometheus text format (as gatehouse writes it: one sample per line).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}")))
            .collect();
        Metrics {
            text: text.to_owned(),
            samples,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every series in the scrape.
    pub fn series(&self) -> Vec<&Series> {
        self.samples.keys().collect()
    }

    /// The sum of the samples of `name` whose labels include `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((sample, sample_labels), _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.iter().any(|(k, v)| k == key && v == value)
                    })
            })
            .map(|(_, value)| value)
            .sum()
    }

    /// Whether a series of `name` with exactly these labels is present.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        self.samples.contains_key(&(name.to_owned(), wanted))
    }
}

fn parse_sample(line: &str) -> Option<(Series, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let Some((name, labels)) = series.split_once('{') else {
        return Some(((series.to_owned(), Vec::new()), value));
    };
    let mut rest = labels.strip_suffix('}')?;
    let mut parsed = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut label = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => label.push('\n'),
                    other => label.push(other),
                },
                '"' => break index,
                other => label.push(other),
            }
        };
        parsed.push((key.to_owned(), label));
        rest = after[end + 1..].trim_start_matches(',');
    }
    parsed.sort();
    Some(((name.to_owned(), parsed), value))
}

/// Runs `promtool check metrics` on `text`; panics with its findings, or when promtool is not
/// installed (`apt-get install prometheus`; `cargo xtask test` and `.ci/run` install it).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the Debian package `prometheus` \
                 (`cargo xtask test` and `.ci/run` do)"
            )
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- metrics ---\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples() {
        let metrics = Metrics::parse(
            "# HELP x y\n# TYPE x counter\nx_total{b=\"2\",a=\"q\\\"uote\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 4\n",
        );
        assert_eq!(metrics.sum("x_total", &[("a", "q\"uote")]), 3.0);
        assert_eq!(metrics.sum("x_total", &[]), 3.0);
        assert_eq!(metrics.sum("x_total", &[("a", "other")]), 0.0);
        assert!(metrics.has("x_total", &[("b", "2"), ("a", "q\"uote")]));
        assert!(!metrics.has("x_total", &[("b", "2")]));
        assert_eq!(metrics.sum("up", &[]), 1.0);
        assert_eq!(metrics.sum("h_bucket", &[("le", "+Inf")]), 4.0);
        assert_eq!(metrics.series().len(), 3);
    }
}
