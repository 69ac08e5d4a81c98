//! Validators and conditional requests (RFC 9110 §13 and §14): ETag and Last-Modified,
//! `If-Match` / `If-Unmodified-Since` → 412, `If-None-Match` / `If-Modified-Since` → 304,
//! `Range` guarded by `If-Range` → 206 or 416.
//!
//! Multiple ranges are answered with the whole file (200): RFC 9110 lets a server ignore
//! `Range`, clients cope, and it spares us multipart/byteranges bodies that nobody benchmarks.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderValue};
use http_range_header::{EndPosition, StartPosition};

use super::cache::Identity;
use super::negotiate::Encoding;

/// What a response says about the version it carries.
pub(super) struct Validators {
    pub etag: HeaderValue,
    pub last_modified: HeaderValue,
    /// Last-Modified has one-second resolution; comparisons use this, not the nanoseconds.
    modified_secs: u64,
}

impl Validators {
    /// The ETag is `"<mtime ns hex>-<length hex>[-br|-gz]"`: it changes with any write that
    /// touches the mtime or the length, and differs per encoding so caches never mix them up.
    pub fn new(identity: &Identity, encoding: Option<Encoding>) -> Self {
        let nanos = identity.mtime_ns.max(0);
        let suffix = encoding.map_or("", Encoding::etag_suffix);
        let etag = format!("\"{nanos:x}-{:x}{suffix}\"", identity.len);
        let modified_secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(0);
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(modified_secs);
        Validators {
            // Hex digits, dashes and quotes, and an HTTP date: always valid header text.
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(date))
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")),
            modified_secs,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Precondition {
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: the client asked for changes only to a version we no longer have.
    Failed,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2 order, for GET and HEAD.
pub(super) fn preconditions(headers: &HeaderMap, validators: &Validators) -> Precondition {
    let etag = validators.etag.as_bytes();
    if headers.contains_key(header::IF_MATCH) {
        if !any_tag_matches(headers, header::IF_MATCH, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, header::IF_UNMODIFIED_SINCE) {
        if validators.modified_secs > since {
            return Precondition::Failed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        // If-None-Match takes precedence: If-Modified-Since is not even looked at.
        if any_tag_matches(headers, header::IF_NONE_MATCH, etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(since) = date(headers, header::IF_MODIFIED_SINCE) {
        if validators.modified_secs <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ranged {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// The part of a `len`-byte file a GET asked for. A malformed `Range`, a stale `If-Range` or
/// several ranges mean the whole file.
pub(super) fn range(headers: &HeaderMap, validators: &Validators, len: u64) -> Ranged {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ranged::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if !if_range_holds(if_range, validators) {
            return Ranged::Full;
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return Ranged::Full;
    };
    // An empty file has no byte to point at; sending it whole is simpler than a 416 nobody wants.
    let ([only], true) = (parsed.ranges.as_slice(), len > 0) else {
        return Ranged::Full;
    };
    let last = len - 1;
    match (only.start, only.end) {
        // A suffix longer than the file means the whole file, as a 206.
        (StartPosition::FromLast(suffix), _) => Ranged::Partial(len.saturating_sub(suffix)..len),
        // `last < first` is invalid syntax, which is ignored rather than refused.
        (StartPosition::Index(start), EndPosition::Index(end)) if end < start => Ranged::Full,
        (StartPosition::Index(start), _) if start > last => Ranged::Unsatisfiable,
        (StartPosition::Index(start), EndPosition::LastByte) => Ranged::Partial(start..len),
        (StartPosition::Index(start), EndPosition::Index(end)) => {
            Ranged::Partial(start..end.min(last) + 1)
        }
    }
}

/// `If-Range` carries either an ETag (strong comparison) or the exact Last-Modified date.
fn if_range_holds(value: &HeaderValue, validators: &Validators) -> bool {
    let bytes = value.as_bytes();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        return bytes == validators.etag.as_bytes();
    }
    value
        .to_str()
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .and_then(|date| date.duration_since(SystemTime::UNIX_EPOCH).ok())
        .is_some_and(|since| since.as_secs() == validators.modified_secs)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// If-Match: a weak tag never matches.
    Strong,
    /// If-None-Match: `W/"x"` matches `"x"`.
    Weak,
}

/// Whether any tag in any `name` header matches `ours` (a strong tag, quotes included).
/// A malformed list stops matching where it goes wrong.
fn any_tag_matches(
    headers: &HeaderMap,
    name: header::HeaderName,
    ours: &[u8],
    how: Comparison,
) -> bool {
    headers.get_all(name).iter().any(|value| {
        let mut rest = value.as_bytes();
        loop {
            rest = rest.trim_ascii_start();
            while let Some(after) = rest.strip_prefix(b",") {
                rest = after.trim_ascii_start();
            }
            if rest.is_empty() {
                return false;
            }
            if let Some(after) = rest.strip_prefix(b"*") {
                if after.trim_ascii().is_empty() {
                    return true;
                }
            }
            let (weak, tagged) = match rest.strip_prefix(b"W/") {
                Some(after) => (true, after),
                None => (false, rest),
            };
            let Some(inner) = tagged.strip_prefix(b"\"") else {
                return false;
            };
            let Some(close) = inner.iter().position(|&b| b == b'"') else {
                return false;
            };
            let tag = &tagged[..close + 2];
            if tag == ours && (how == Comparison::Weak || !weak) {
                return true;
            }
            rest = &tagged[close + 2..];
        }
    })
}

/// An HTTP date header as seconds since the epoch; unparsable dates are ignored, as RFC 9110 asks.
fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        let identity = Identity {
            dev: 1,
            ino: 2,
            len: 100,
            mtime_ns: 1_700_000_000_123_456_789,
        };
        Validators::new(&identity, None)
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn etag_differs_per_encoding_and_version() {
        let identity = Identity {
            dev: 1,
            ino: 2,
            len: 100,
            mtime_ns: 5,
        };
        let plain = Validators::new(&identity, None).etag;
        let br = Validators::new(&identity, Some(Encoding::Br)).etag;
        let gz = Validators::new(&identity, Some(Encoding::Gzip)).etag;
        let longer = Validators::new(
            &Identity {
                len: 101,
                ..identity
            },
            None,
        )
        .etag;
        assert_eq!(plain, "\"5-64\"");
        assert!(plain != br && br != gz && plain != gz && plain != longer);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let v = validators();
        let ours = v.etag.to_str().unwrap().to_owned();
        for value in [
            ours.clone(),
            format!("W/{ours}"),
            format!("\"x\", {ours}"),
            "*".into(),
            format!(" \"a,b\" ,,{ours}"),
        ] {
            let h = headers(&[(header::IF_NONE_MATCH, &value)]);
            assert_eq!(preconditions(&h, &v), Precondition::NotModified, "{value}");
        }
        for value in ["\"x\"", "garbage", "\"unterminated"] {
            let h = headers(&[(header::IF_NONE_MATCH, value)]);
            assert_eq!(preconditions(&h, &v), Precondition::Proceed, "{value}");
        }
    }

    #[test]
    fn if_none_match_beats_if_modified_since() {
        let v = validators();
        let later = "Sat, 01 Jan 2050 00:00:00 GMT";
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, later),
        ]);
        assert_eq!(preconditions(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, later)]);
        assert_eq!(preconditions(&h, &v), Precondition::NotModified);
        let exact = v.last_modified.to_str().unwrap();
        let h = headers(&[(header::IF_MODIFIED_SINCE, exact)]);
        assert_eq!(preconditions(&h, &v), Precondition::NotModified);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "Thu, 01 Jan 2015 00:00:00 GMT")]);
        assert_eq!(preconditions(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_MODIFIED_SINCE, "not a date")]);
        assert_eq!(preconditions(&h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_and_if_unmodified_since_fail_with_412() {
        let v = validators();
        let ours = v.etag.to_str().unwrap().to_owned();
        let h = headers(&[(header::IF_MATCH, "\"other\"")]);
        assert_eq!(preconditions(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_MATCH, &format!("W/{ours}"))]);
        assert_eq!(preconditions(&h, &v), Precondition::Failed);
        let h = headers(&[(header::IF_MATCH, &ours)]);
        assert_eq!(preconditions(&h, &v), Precondition::Proceed);
        let h = headers(&[(header::IF_UNMODIFIED_SINCE, "Thu, 01 Jan 2015 00:00:00 GMT")]);
        assert_eq!(preconditions(&h, &v), Precondition::Failed);
    }

    #[test]
    fn ranges() {
        let v = validators();
        let cases = [
            ("bytes=0-9", Ranged::Partial(0..10)),
            ("bytes=90-", Ranged::Partial(90..100)),
            ("bytes=90-500", Ranged::Partial(90..100)),
            ("bytes=-10", Ranged::Partial(90..100)),
            ("bytes=-500", Ranged::Partial(0..100)),
            ("bytes=99-99", Ranged::Partial(99..100)),
            ("bytes=100-", Ranged::Unsatisfiable),
            ("bytes=500-600", Ranged::Unsatisfiable),
            ("bytes=5-2", Ranged::Full),
            ("bytes=600-500", Ranged::Full),
            ("bytes=0-1,5-6", Ranged::Full),
            ("items=0-1", Ranged::Full),
            ("bytes=abc", Ranged::Full),
        ];
        for (value, expected) in cases {
            let h = headers(&[(header::RANGE, value)]);
            assert_eq!(range(&h, &v, 100), expected, "{value}");
        }
        let h = headers(&[(header::RANGE, "bytes=0-")]);
        assert_eq!(range(&h, &v, 0), Ranged::Full);
    }

    #[test]
    fn if_range_needs_the_current_validator() {
        let v = validators();
        let ours = v.etag.to_str().unwrap().to_owned();
        let date = v.last_modified.to_str().unwrap().to_owned();
        for (if_range, expected) in [
            (ours.as_str(), Ranged::Partial(0..2)),
            (date.as_str(), Ranged::Partial(0..2)),
            ("\"old\"", Ranged::Full),
            ("Thu, 01 Jan 2015 00:00:00 GMT", Ranged::Full),
        ] {
            let h = headers(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, if_range)]);
            assert_eq!(range(&h, &v, 100), expected, "{if_range}");
        }
        let weak = format!("W/{ours}");
        let h = headers(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, &weak)]);
        assert_eq!(range(&h, &v, 100), Ranged::Full);
    }
}
