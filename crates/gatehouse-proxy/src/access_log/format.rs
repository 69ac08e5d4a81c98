//! Access log line formats: `combined`, `json`, and Gunicorn-style format strings.
//!
//! Gunicorn atoms (`%(name)s`): `h` client address, `l` `-`, `u` user (`-`), `t` time in
//! `[10/Oct/2000:13:55:36 -0700]` form, `r` request line, `m` method, `U` path, `q` query, `H`
//! protocol, `s` status, `B` response bytes, `b` response bytes or `-`, `f` referer, `a` user agent,
//! `T` seconds, `M` milliseconds, `D` microseconds, `L` decimal seconds, `p` `<pid>`,
//! `{name}i` a request header, `{name}o` a response header. gatehouse adds `request_id`, `host`,
//! `route`, `upstream` (the server or worker that answered), `upstream_time` (seconds, decimal) and
//! `queue_time` (seconds, decimal, waited in an app's queue for a worker slot).
//! An unknown atom is printed verbatim so a typo shows in the log rather than vanishing.

use std::fmt::Write as _;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use gatehouse_config::model::AccessFormat;

use super::Record;

#[derive(Debug)]
pub enum Format {
    Combined,
    Json,
    Custom {
        pieces: Vec<Piece>,
        request_headers: Vec<String>,
        response_headers: Vec<String>,
    },
}

#[derive(Debug, PartialEq)]
pub enum Piece {
    Literal(String),
    Atom(Atom),
}

#[derive(Debug, PartialEq)]
pub enum Atom {
    ClientAddress,
    Dash,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Status,
    Bytes,
    BytesOrDash,
    Referer,
    UserAgent,
    Seconds,
    Milliseconds,
    Microseconds,
    DecimalSeconds,
    ProcessId,
    RequestHeader(usize),
    ResponseHeader(usize),
    RequestId,
    Host,
    Route,
    Upstream,
    UpstreamTime,
    QueueTime,
    Unknown(String),
}

impl Format {
    pub fn compile(format: &AccessFormat) -> Format {
        match format {
            AccessFormat::Combined => Format::Combined,
            AccessFormat::Json => Format::Json,
            AccessFormat::Gunicorn(text) => compile_custom(text),
        }
    }

    pub fn wanted_headers(&self) -> (&[String], &[String]) {
        match self {
            Format::Custom {
                request_headers,
                response_headers,
                ..
            } => (request_headers, response_headers),
            _ => (&[], &[]),
        }
    }

    pub fn render(&self, record: &Record, out: &mut String) {
        match self {
            Format::Combined => render_combined(record, out),
            Format::Json => render_json(record, out),
            Format::Custom { pieces, .. } => {
                for piece in pieces {
                    match piece {
                        Piece::Literal(text) => out.push_str(text),
                        Piece::Atom(atom) => render_atom(atom, record, out),
                    }
                }
            }
        }
    }
}

fn compile_custom(text: &str) -> Format {
    let mut pieces = Vec::new();
    let mut request_headers = Vec::new();
    let mut response_headers = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(stripped) = after.strip_prefix("%%") {
            literal.push('%');
            rest = stripped;
            continue;
        }
        let parsed = after.strip_prefix("%(").and_then(|inner| {
            inner
                .find(")s")
                .map(|end| (&inner[..end], &inner[end + 2..]))
        });
        let Some((name, remainder)) = parsed else {
            literal.push('%');
            rest = &after[1..];
            continue;
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Atom(atom(
            name,
            &mut request_headers,
            &mut response_headers,
        )));
        rest = remainder;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Format::Custom {
        pieces,
        request_headers,
        response_headers,
    }
}

fn atom(name: &str, request_headers: &mut Vec<String>, response_headers: &mut Vec<String>) -> Atom {
    if let Some(header) = name.strip_prefix('{') {
        let (header, kind) = match (header.strip_suffix("}i"), header.strip_suffix("}o")) {
            (Some(header), _) => (header, 'i'),
            (_, Some(header)) => (header, 'o'),
            _ => return Atom::Unknown(format!("%({name})s")),
        };
        let list = if kind == 'i' {
            &mut *request_headers
        } else {
            &mut *response_headers
        };
        let header = header.to_ascii_lowercase();
        let index = list
            .iter()
            .position(|known| *known == header)
            .unwrap_or_else(|| {
                list.push(header);
                list.len() - 1
            });
        return if kind == 'i' {
            Atom::RequestHeader(index)
        } else {
            Atom::ResponseHeader(index)
        };
    }
    match name {
        "h" => Atom::ClientAddress,
        "l" | "u" => Atom::Dash,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Bytes,
        "b" => Atom::BytesOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Milliseconds,
        "D" => Atom::Microseconds,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::ProcessId,
        "request_id" => Atom::RequestId,
        "host" => Atom::Host,
        "route" => Atom::Route,
        "upstream" => Atom::Upstream,
        "upstream_time" => Atom::UpstreamTime,
        "queue_time" => Atom::QueueTime,
        other => Atom::Unknown(format!("%({other})s")),
    }
}

fn render_atom(atom: &Atom, record: &Record, out: &mut String) {
    match atom {
        Atom::ClientAddress => {
            let _ = write!(out, "{}", record.client_ip);
        }
        Atom::Dash => out.push('-'),
        Atom::Time => push_clf_time(record, out),
        Atom::RequestLine => push_request_line(record, out),
        Atom::Method => out.push_str(record.method.as_str()),
        Atom::Path => push_escaped(path_of(&record.target), out),
        Atom::Query => push_escaped(query_of(&record.target), out),
        Atom::Protocol => out.push_str(protocol(record.version)),
        Atom::Status => {
            let _ = write!(out, "{}", record.status);
        }
        Atom::Bytes => {
            let _ = write!(out, "{}", record.response_bytes);
        }
        Atom::BytesOrDash => push_bytes_or_dash(record, out),
        Atom::Referer => push_optional(record.referer.as_deref(), out),
        Atom::UserAgent => push_optional(record.user_agent.as_deref(), out),
        Atom::Seconds => {
            let _ = write!(out, "{}", record.duration.as_secs());
        }
        Atom::Milliseconds => {
            let _ = write!(out, "{}", record.duration.as_millis());
        }
        Atom::Microseconds => {
            let _ = write!(out, "{}", record.duration.as_micros());
        }
        Atom::DecimalSeconds => {
            let _ = write!(out, "{:.6}", record.duration.as_secs_f64());
        }
        Atom::ProcessId => {
            let _ = write!(out, "<{}>", std::process::id());
        }
        Atom::RequestHeader(index) => push_header(&record.request_headers, *index, out),
        Atom::ResponseHeader(index) => push_header(&record.response_headers, *index, out),
        Atom::RequestId => push_escaped(&record.request_id, out),
        Atom::Host => push_optional(record.host.as_deref(), out),
        Atom::Route => push_optional(record.route.as_deref(), out),
        Atom::Upstream => push_optional(record.served_by.as_deref(), out),
        Atom::UpstreamTime => push_seconds(record.upstream_time, out),
        Atom::QueueTime => push_seconds(record.queue_time, out),
        Atom::Unknown(text) => out.push_str(text),
    }
}

/// `$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
fn render_combined(record: &Record, out: &mut String) {
    let _ = write!(out, "{} - - ", record.client_ip);
    push_clf_time(record, out);
    out.push_str(" \"");
    push_request_line(record, out);
    let _ = write!(out, "\" {} ", record.status);
    push_bytes_or_dash(record, out);
    out.push_str(" \"");
    push_optional(record.referer.as_deref(), out);
    out.push_str("\" \"");
    push_optional(record.user_agent.as_deref(), out);
    out.push('"');
}

fn render_json(record: &Record, out: &mut String) {
    let time = DateTime::<Utc>::from(record.time).to_rfc3339_opts(SecondsFormat::Millis, true);
    let value = serde_json::json!({
        "time": time,
        "remote_addr": record.client_ip.to_string(),
        "method": record.method.as_str(),
        "uri": record.target,
        "protocol": protocol(record.version),
        "status": record.status,
        "bytes": record.response_bytes,
        "duration_ms": record.duration.as_secs_f64() * 1000.0,
        "request_id": record.request_id,
        "host": record.host,
        "referer": record.referer,
        "user_agent": record.user_agent,
        "route": record.route,
        "upstream": record.served_by,
        "upstream_ms": record.upstream_time.map(|time| time.as_secs_f64() * 1000.0),
        "queue_ms": record.queue_time.map(|time| time.as_secs_f64() * 1000.0),
    });
    out.push_str(&value.to_string());
}

/// Decimal seconds, or `-` when the request never got that far.
fn push_seconds(time: Option<std::time::Duration>, out: &mut String) {
    match time {
        Some(time) => {
            let _ = write!(out, "{:.6}", time.as_secs_f64());
        }
        None => out.push('-'),
    }
}

fn push_clf_time(record: &Record, out: &mut String) {
    let local = DateTime::<Local>::from(record.time);
    let _ = write!(out, "[{}]", local.format("%d/%b/%Y:%H:%M:%S %z"));
}

fn push_request_line(record: &Record, out: &mut String) {
    out.push_str(record.method.as_str());
    out.push(' ');
    push_escaped(&record.target, out);
    out.push(' ');
    out.push_str(protocol(record.version));
}

fn push_bytes_or_dash(record: &Record, out: &mut String) {
    if record.response_bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", record.response_bytes);
    }
}

fn push_optional(value: Option<&str>, out: &mut String) {
    match value {
        Some(value) => push_escaped(value, out),
        None => out.push('-'),
    }
}

fn push_header(headers: &[(String, String)], index: usize, out: &mut String) {
    let value = headers
        .get(index)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty());
    push_optional(value, out);
}

/// Escapes `"`, `\` and non-printable bytes as Nginx does (`\x22`), so a line stays one line and
/// a client cannot forge fields.
fn push_escaped(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            let _ = write!(out, "\\x{byte:02X}");
        } else {
            out.push(char::from(byte));
        }
    }
}

fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

fn query_of(target: &str) -> &str {
    target.split_once('?').map_or("", |(_, query)| query)
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            client_ip: "192.0.2.7".parse().unwrap(),
            method: http::Method::GET,
            target: "/a b?x=\"1\"".into(),
            version: http::Version::HTTP_11,
            status: 200,
            response_bytes: 1234,
            duration: Duration::from_micros(2500),
            request_id: "abc".into(),
            host: Some("example.com".into()),
            referer: None,
            user_agent: Some("curl/8".into()),
            route: Some("/".into()),
            served_by: Some("127.0.0.1:8001".into()),
            upstream_time: Some(Duration::from_millis(2)),
            queue_time: Some(Duration::from_micros(1500)),
            request_headers: vec![("x-custom".into(), "v".into())],
            response_headers: vec![],
        }
    }

    fn render(format: &Format) -> String {
        let mut out = String::new();
        format.render(&record(), &mut out);
        out
    }

    #[test]
    fn combined_escapes_quotes() {
        let line = render(&Format::Combined);
        assert!(line.starts_with("192.0.2.7 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /a b?x=\\x221\\x22 HTTP/1.1\" 200 1234 \"-\" \"curl/8\""),
            "{line}"
        );
    }

    #[test]
    fn gunicorn_reference_format() {
        let format = Format::compile(&AccessFormat::Gunicorn(
            r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#.into(),
        ));
        let line = render(&format);
        let combined = render(&Format::Combined);
        assert_eq!(line, combined);
    }

    #[test]
    fn gunicorn_extras_and_headers() {
        let format = Format::compile(&AccessFormat::Gunicorn(
            "%(D)s %(M)s %(request_id)s %({X-Custom}i)s %({x-missing}o)s %(upstream)s %% %(nope)s"
                .into(),
        ));
        assert_eq!(
            format.wanted_headers(),
            (
                &["x-custom".to_string()][..],
                &["x-missing".to_string()][..]
            )
        );
        assert_eq!(render(&format), "2500 2 abc v - 127.0.0.1:8001 % %(nope)s");
    }

    #[test]
    fn upstream_and_queue_times() {
        let format = Format::compile(&AccessFormat::Gunicorn(
            "%(upstream_time)s %(queue_time)s".into(),
        ));
        assert_eq!(render(&format), "0.002000 0.001500");
        let mut unqueued = record();
        unqueued.queue_time = None;
        let mut line = String::new();
        format.render(&unqueued, &mut line);
        assert_eq!(line, "0.002000 -");
    }

    #[test]
    fn json_is_one_object() {
        let line = render(&Format::Json);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["status"], 200);
        assert_eq!(value["request_id"], "abc");
        assert_eq!(value["upstream"], "127.0.0.1:8001");
        assert_eq!(value["queue_ms"], 1.5);
    }
}
