//! Static files for `static = { ... }` routes: from the request path left after the route prefix
//! to a file response with Nginx's HTTP semantics (ETag, 304, Range, HEAD, precompressed
//! siblings, index files, the trailing-slash redirect).
//!
//! [`StaticFiles::serve`] reads in the order of its work: validate the path ([`path`], remembered
//! by `cache`), handle directories, pick the representation (`negotiate`), evaluate conditions
//! (`conditional`), read the bytes (`file`), write the head (`response`).
//!
//! A request is [`Outcome::Missing`] when [`path::resolve`] refuses it (see [`Rejection`] for
//! every reason), when a directory has none of the index files, or when a file is asked for with
//! a trailing slash. The caller turns that into the route's fallback or a 404.

mod cache;
mod conditional;
mod file;
mod negotiate;
pub mod path;
mod response;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use gatehouse_config::model;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};

use self::cache::{Cache, Entry, Identity, Kind};
use self::conditional::{Precondition, Ranged, Validators};
use self::negotiate::Encoding;
use self::response::Representation;
use crate::body::{self, Body};
use crate::error::error_response;

pub use self::path::{resolve, Rejection};

/// One static route's files. Cheap to share behind an `Arc`; the cache inside is per route and
/// dies with it on a config reload.
pub struct StaticFiles {
    /// Canonical, as the config model guarantees; [`path::confine`] compares against it.
    root: PathBuf,
    index: Vec<String>,
    cache_control: Option<HeaderValue>,
    precompressed: bool,
    dotfiles: bool,
    cache: Cache,
}

/// What [`StaticFiles::serve`] made of a request.
#[derive(Debug)]
pub enum Outcome {
    Served(Response<Body>),
    /// No servable file: the route's fallback answers, or 404.
    Missing,
    /// The file exists but the method is neither GET nor HEAD: the fallback answers, or 405.
    MethodNotAllowed,
}

impl StaticFiles {
    pub fn new(config: &model::Static) -> Self {
        let cache_control = config.cache_control.as_deref().and_then(|value| {
            let parsed = HeaderValue::from_str(value).ok();
            if parsed.is_none() {
                tracing::warn!(
                    value,
                    "static cache_control is not a valid header value; not sent"
                );
            }
            parsed
        });
        StaticFiles {
            root: config.root.clone(),
            index: config.index.clone(),
            cache_control,
            precompressed: config.precompressed,
            dotfiles: config.dotfiles,
            cache: Cache::default(),
        }
    }

    /// `relative` is the request path after the route prefix was stripped, still
    /// percent-encoded (may be "" or start without '/'). `uri` is the original request URI,
    /// used for the trailing-slash redirect.
    pub async fn serve(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        relative: &str,
    ) -> Outcome {
        let Ok(lexical) = path::lexical(relative, self.dotfiles) else {
            return Outcome::Missing;
        };
        let target = self.root.join(lexical);
        let Ok(found) = self.cache.find(&self.root, &target, self.dotfiles) else {
            return Outcome::Missing;
        };
        let readable = method == Method::GET || method == Method::HEAD;
        let (path, entry) = match found.kind {
            Kind::Dir if !uri.path().ends_with('/') => {
                if !readable {
                    return Outcome::MethodNotAllowed;
                }
                return Outcome::Served(response::redirect_to_slash(uri));
            }
            Kind::Dir => match self.index_file(&target) {
                Some(index) => index,
                None => return Outcome::Missing,
            },
            // `a.css/` names a directory that is not there, as on every Unix file system.
            Kind::File { .. } if relative.ends_with('/') => return Outcome::Missing,
            Kind::File { .. } => (target, found),
        };
        if !readable {
            return Outcome::MethodNotAllowed;
        }
        let content_type = response::content_type(&path);
        let (key, entry, encoding) = self.representation(headers, path, entry);
        self.respond(method, headers, &key, entry, encoding, content_type)
    }

    /// The first configured index file in `dir` that is a servable file.
    fn index_file(&self, dir: &Path) -> Option<(PathBuf, Entry)> {
        self.index.iter().find_map(|name| {
            let candidate = dir.join(name);
            match self.cache.find(&self.root, &candidate, self.dotfiles) {
                Ok(
                    entry @ Entry {
                        kind: Kind::File { .. },
                        ..
                    },
                ) => Some((candidate, entry)),
                _ => None,
            }
        })
    }

    /// The precompressed sibling the client prefers, if any exists (validated like any path),
    /// else the file itself. Returns the path the entry is cached under.
    fn representation(
        &self,
        headers: &HeaderMap,
        path: PathBuf,
        entry: Entry,
    ) -> (PathBuf, Entry, Option<Encoding>) {
        if self.precompressed {
            for encoding in negotiate::preferred(headers) {
                let mut sibling = path.clone().into_os_string();
                sibling.push(".");
                sibling.push(encoding.extension());
                let sibling = PathBuf::from(sibling);
                if let Some(
                    found @ Entry {
                        kind: Kind::File { .. },
                        ..
                    },
                ) = self.cache.find_sibling(&self.root, &sibling, self.dotfiles)
                {
                    return (sibling, found, Some(encoding));
                }
            }
        }
        (path, entry, None)
    }

    fn respond(
        &self,
        method: &Method,
        headers: &HeaderMap,
        key: &Path,
        entry: Entry,
        encoding: Option<Encoding>,
        content_type: HeaderValue,
    ) -> Outcome {
        let head = method == Method::HEAD;
        let Ok((identity, source)) = self.load(key, entry, head) else {
            return Outcome::Missing;
        };
        let len = identity.len;
        let representation = Representation {
            validators: Validators::new(&identity, encoding),
            content_type,
            encoding,
            cache_control: self.cache_control.as_ref(),
            vary: self.precompressed,
        };
        match conditional::preconditions(headers, &representation.validators) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Outcome::Served(representation.not_modified()),
            Precondition::Failed => {
                return Outcome::Served(error_response(StatusCode::PRECONDITION_FAILED))
            }
        }
        // RFC 9110 defines Range for GET only; HEAD describes the whole file.
        let ranged = if head {
            Ranged::Full
        } else {
            conditional::range(headers, &representation.validators, len)
        };
        let response = match ranged {
            Ranged::Unsatisfiable => representation.unsatisfiable(len),
            Ranged::Full => representation.ok(len, source.body(0..len)),
            Ranged::Partial(range) => {
                let body = source.body(range.clone());
                representation.partial(&range, len, body)
            }
        };
        Outcome::Served(response)
    }

    /// The file's current identity and where its bytes come from. A GET of a file not in memory
    /// opens it now, so the head describes exactly what the body will carry; a small file is
    /// read whole and remembered.
    fn load(&self, key: &Path, entry: Entry, head: bool) -> Result<(Identity, Source), Rejection> {
        let Kind::File { canonical, bytes } = entry.kind else {
            return Err(Rejection::NotRegular);
        };
        if head {
            return Ok((entry.identity, Source::Nothing));
        }
        if let Some(bytes) = bytes {
            return Ok((entry.identity, Source::Memory(bytes)));
        }
        let (opened, mut identity) = file::open(&canonical, &entry.identity)?;
        if identity.len > cache::SMALL_FILE {
            return Ok((identity, Source::Disk(opened)));
        }
        let bytes = file::read_small(opened, identity.len).map_err(Rejection::NotFound)?;
        if bytes.len() as u64 == identity.len {
            let kind = Kind::File {
                canonical,
                bytes: Some(bytes.clone()),
            };
            self.cache.insert(key, Entry { identity, kind });
        } else {
            // Shrank while we read: send what we have, remember nothing.
            identity.len = bytes.len() as u64;
        }
        Ok((identity, Source::Memory(bytes)))
    }
}

/// Where a response body comes from.
enum Source {
    /// The whole file, `len` bytes exactly.
    Memory(Bytes),
    /// An open descriptor, streamed.
    Disk(std::fs::File),
    /// HEAD: no bytes at all.
    Nothing,
}

impl Source {
    /// The body for `range`, which [`conditional::range`] keeps within the file.
    fn body(self, range: std::ops::Range<u64>) -> Body {
        match self {
            Source::Memory(bytes) => {
                let start = usize::try_from(range.start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(range.end)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                body::full(bytes.slice(start..end.max(start)))
            }
            Source::Disk(opened) => file::stream(opened, range),
            Source::Nothing => body::empty(),
        }
    }
}
