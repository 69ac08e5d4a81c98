//! The response heads static files answer with: 200, 206, 304, 416 and the trailing-slash 301.
//! Decisions are made elsewhere; this only writes headers.

use std::ops::Range;
use std::path::Path;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode, Uri};

use super::conditional::Validators;
use super::negotiate::Encoding;
use crate::body::{self, Body};
use crate::error::error_response;

/// Everything a response says about the file besides its bytes.
pub(super) struct Representation<'a> {
    pub validators: Validators,
    pub content_type: HeaderValue,
    pub encoding: Option<Encoding>,
    pub cache_control: Option<&'a HeaderValue>,
    /// True when the route serves precompressed files: the answer depends on Accept-Encoding
    /// even when the plain file is sent, and shared caches must know.
    pub vary: bool,
}

impl Representation<'_> {
    /// 200 with the whole file (`len` bytes; the body is empty for HEAD).
    pub fn ok(&self, len: u64, body: Body) -> Response<Body> {
        let mut response = Response::new(body);
        self.describe(response.headers_mut(), len);
        response
    }

    /// 206 with `range` of a `len`-byte file.
    pub fn partial(&self, range: &Range<u64>, len: u64, body: Body) -> Response<Body> {
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let headers = response.headers_mut();
        self.describe(headers, range.end - range.start);
        let content_range = format!("bytes {}-{}/{len}", range.start, range.end - 1);
        insert(headers, header::CONTENT_RANGE, &content_range);
        response
    }

    /// 304: validators and caching headers only, as RFC 9110 §15.4.5 lists them.
    pub fn not_modified(&self) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        self.validate(response.headers_mut());
        response
    }

    /// 416 naming the real length, so the client can ask again.
    pub fn unsatisfiable(&self, len: u64) -> Response<Body> {
        let mut response = error_response(StatusCode::RANGE_NOT_SATISFIABLE);
        let headers = response.headers_mut();
        insert(headers, header::CONTENT_RANGE, &format!("bytes */{len}"));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if self.vary {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        response
    }

    fn describe(&self, headers: &mut HeaderMap, content_length: u64) {
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(encoding) = self.encoding {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.content_encoding()),
            );
        }
        self.validate(headers);
    }

    fn validate(&self, headers: &mut HeaderMap) {
        headers.insert(header::ETAG, self.validators.etag.clone());
        headers.insert(header::LAST_MODIFIED, self.validators.last_modified.clone());
        if let Some(cache_control) = self.cache_control {
            headers.insert(header::CACHE_CONTROL, cache_control.clone());
        }
        if self.vary {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
    }
}

/// 301 from a directory to the same path with a trailing slash, so relative links in its
/// index resolve inside it. Built from the original URI (the route prefix included), query kept.
pub(super) fn redirect_to_slash(uri: &Uri) -> Response<Body> {
    // `//evil.example/dir` would become a protocol-relative Location pointing off-site.
    let path = format!("/{}/", uri.path().trim_start_matches('/'));
    let location = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut response = error_response(StatusCode::MOVED_PERMANENTLY);
    insert(response.headers_mut(), header::LOCATION, &location);
    response
}

/// The type guessed from the extension; text types get `charset=utf-8` as Nginx's `charset`
/// directive would add, since browsers otherwise guess (and sometimes guess Latin-1).
pub(super) fn content_type(path: &Path) -> HeaderValue {
    let Some(mime) = mime_guess::from_path(path).first_raw() else {
        return HeaderValue::from_static("application/octet-stream");
    };
    let textual = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript"
                | "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "image/svg+xml"
        );
    if textual {
        if let Ok(value) = HeaderValue::from_str(&format!("{mime}; charset=utf-8")) {
            return value;
        }
    }
    HeaderValue::from_static(mime)
}

/// Inserts a header built from text that is valid by construction (digits, a path from a parsed
/// URI); if it somehow is not, the header is left out rather than failing the response.
fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
