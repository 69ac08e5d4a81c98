//! Parsing the network-ish strings of the file: listen addresses, upstream servers, CIDR networks
//! and route host patterns. Each function is total and returns the message for a bad value.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::model::{Cidr, Endpoint, HostPattern, ListenAddress};

/// `sun_path` holds 108 bytes including the terminating NUL on Linux; longer paths cannot be bound.
const MAX_UNIX_PATH: usize = 107;

/// A listener's `address`: `IP:PORT`, `unix:PATH` or `fd:N`.
pub fn listen_address(text: &str, base: &Path) -> Result<ListenAddress, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return unix_path(path, base).map(ListenAddress::Unix);
    }
    if let Some(fd) = text.strip_prefix("fd:") {
        return match fd.parse::<i32>() {
            // 0, 1 and 2 are stdin, stdout and stderr; socket activation starts at 3.
            Ok(fd) if fd >= 3 => Ok(ListenAddress::Fd(fd)),
            _ => Err(format!(
                "invalid descriptor {text:?} (expected fd:N with N >= 3)"
            )),
        };
    }
    socket_addr(text)
        .map(ListenAddress::Tcp)
        .map_err(|why| format!("{why}; also accepted: unix:/path.sock, fd:N"))
}

/// An `IP:PORT` to bind. Host names are refused: binding must not depend on DNS.
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') && !host.starts_with('[') => Err(format!(
            "invalid address {text:?}: write IPv6 addresses in brackets, e.g. [::1]:8080"
        )),
        Some((host, port))
            if !host.is_empty() && host.parse::<IpAddr>().is_err() && port.parse::<u16>().is_ok() =>
        {
            Err(format!(
                "invalid address {text:?}: host names are not allowed, use an IP address (e.g. 127.0.0.1:8080 or [::]:443)"
            ))
        }
        _ => Err(format!(
            "invalid address {text:?} (expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:443)"
        )),
    }
}

/// An upstream server: `host:port` (resolved at connect time) or `unix:PATH`.
pub fn endpoint(text: &str, base: &Path) -> Result<Endpoint, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return unix_path(path, base).map(Endpoint::Unix);
    }
    let bad = || format!("invalid server {text:?} (expected host:port or unix:/path.sock)");
    if text.contains("://") {
        return Err(format!(
            "invalid server {text:?}: no scheme, write host:port or unix:/path.sock"
        ));
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    if port.parse::<u16>().map_or(true, |port| port == 0) {
        return Err(bad());
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_host_name(host),
    };
    if host_ok {
        Ok(Endpoint::Tcp(text.to_owned()))
    } else {
        Err(bad())
    }
}

/// A Unix socket path, resolved against the config file's directory.
pub fn unix_path(path: &str, base: &Path) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("unix: needs a socket path, e.g. unix:/run/app.sock".to_owned());
    }
    let path = base.join(path);
    if path.as_os_str().len() > MAX_UNIX_PATH {
        return Err(format!(
            "socket path {} is longer than {MAX_UNIX_PATH} bytes",
            path.display()
        ));
    }
    Ok(path)
}

/// `10.0.0.0/8`, `::1/128`, or a bare IP address (a single host).
pub fn cidr(text: &str) -> Result<Cidr, String> {
    let bad =
        || format!("invalid network {text:?} (expected e.g. 10.0.0.0/8, ::1/128 or an IP address)");
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let network: IpAddr = ip.parse().map_err(|_| bad())?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(len) => {
            // `u8::from_str` would also take "+8".
            let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
            match len.parse::<u8>() {
                Ok(len) if digits && len <= max => len,
                _ => return Err(bad()),
            }
        }
    };
    Ok(Cidr {
        network,
        prefix_len,
    })
}

/// A route's `host`: an exact name or `*.suffix`, compared case-insensitively, without port.
pub fn host_pattern(text: &str) -> Result<HostPattern, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(suffix) = lower.strip_prefix("*.") {
        return if is_dns_name(suffix) {
            Ok(HostPattern::Suffix(format!(".{suffix}")))
        } else {
            Err(format!(
                "invalid host {text:?} (expected a name like example.com or *.example.com)"
            ))
        };
    }
    if lower.contains('*') {
        return Err(format!(
            "invalid host {text:?}: a wildcard is only allowed as a leading \"*.\""
        ));
    }
    let has_port = match lower.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => lower.contains(':'),
    };
    if has_port {
        return Err(format!(
            "invalid host {text:?}: routes match the host without its port"
        ));
    }
    if is_host_name(&lower) {
        Ok(HostPattern::Exact(lower))
    } else {
        Err(format!(
            "invalid host {text:?} (expected a name like example.com or *.example.com)"
        ))
    }
}

/// A DNS name, an IPv4 address or a bracketed IPv6 address.
fn is_host_name(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_dns_name(host),
    }
}

/// Letters, digits, `-` and `_` in non-empty labels separated by dots.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let base = Path::new("/etc/gatehouse");
        let ok = |s| listen_address(s, base).unwrap().to_string();
        assert_eq!(ok("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(ok("[::]:443"), "[::]:443");
        assert_eq!(ok("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(ok("unix:/run/g.sock"), "unix:/run/g.sock");
        assert_eq!(ok("unix:g.sock"), "unix:/etc/gatehouse/g.sock");
        assert_eq!(ok("fd:3"), "fd:3");
        let err = |s| listen_address(s, base).unwrap_err();
        assert!(err("localhost:80").contains("host names are not allowed"));
        assert!(err("::1:80").contains("in brackets"));
        assert!(err("8080").starts_with("invalid address \"8080\" (expected IP:PORT"));
        assert!(err("fd:1").contains("N >= 3"));
        assert!(err("fd:x").contains("N >= 3"));
        assert!(err("unix:").contains("needs a socket path"));
        assert!(err(&format!("unix:/{}", "a".repeat(120))).contains("longer than 107"));
    }

    #[test]
    fn endpoints() {
        let base = Path::new("/srv");
        assert_eq!(
            endpoint("10.0.0.5:8000", base),
            Ok(Endpoint::Tcp("10.0.0.5:8000".into()))
        );
        assert_eq!(
            endpoint("api.internal:80", base),
            Ok(Endpoint::Tcp("api.internal:80".into()))
        );
        assert_eq!(
            endpoint("[::1]:80", base),
            Ok(Endpoint::Tcp("[::1]:80".into()))
        );
        assert_eq!(
            endpoint("unix:api.sock", base),
            Ok(Endpoint::Unix("/srv/api.sock".into()))
        );
        for bad in [
            "api",
            "api:",
            "api:0",
            "api:99999",
            ":80",
            "a b:80",
            "[zz]:80",
        ] {
            assert!(endpoint(bad, base).is_err(), "{bad}");
        }
        assert!(endpoint("http://a:80", base)
            .unwrap_err()
            .contains("no scheme"));
    }

    #[test]
    fn networks() {
        let c = |s| cidr(s).map(|c| (c.network.to_string(), c.prefix_len));
        assert_eq!(c("10.0.0.0/8"), Ok(("10.0.0.0".into(), 8)));
        assert_eq!(c("::1/128"), Ok(("::1".into(), 128)));
        assert_eq!(c("192.168.1.7"), Ok(("192.168.1.7".into(), 32)));
        assert_eq!(c("fd00::1"), Ok(("fd00::1".into(), 128)));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "x",
        ] {
            assert!(cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            host_pattern("Example.COM"),
            Ok(HostPattern::Exact("example.com".into()))
        );
        assert_eq!(
            host_pattern("*.Example.com"),
            Ok(HostPattern::Suffix(".example.com".into()))
        );
        assert_eq!(
            host_pattern("127.0.0.1"),
            Ok(HostPattern::Exact("127.0.0.1".into()))
        );
        assert_eq!(
            host_pattern("[::1]"),
            Ok(HostPattern::Exact("[::1]".into()))
        );
        assert!(host_pattern("example.com:8080")
            .unwrap_err()
            .contains("without its port"));
        assert!(host_pattern("[::1]:80")
            .unwrap_err()
            .contains("without its port"));
        assert!(host_pattern("a.*.com").unwrap_err().contains("leading"));
        for bad in ["*", "*.", "", "a..b", "a b", "ex/ample"] {
            assert!(host_pattern(bad).is_err(), "{bad}");
        }
    }
}
