//! Opening and reading a file that [`super::path`] already validated: small files in one read on
//! the async thread, large ones streamed in chunks on the blocking pool.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;

use super::cache::Identity;
use super::path::Rejection;
use crate::body::{self, Body};

/// Large files go out in pieces of this size, so a 1 GiB file never sits in memory.
const CHUNK: u64 = 64 * 1024;

/// `O_NONBLOCK`, spelled out to keep `libc` out of the crate. The metadata check in
/// [`super::path::confine`] already keeps FIFOs and devices out; this is the second guard, so
/// that a FIFO swapped in after the check still cannot block `open`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NONBLOCK: i32 = 0x0004;

/// Opens `canonical` and checks that it is still the regular file that was validated (same
/// device and inode). Returns the identity read from the open descriptor, which is what the
/// response must describe.
pub(super) fn open(canonical: &Path, validated: &Identity) -> Result<(File, Identity), Rejection> {
    let file = File::options()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(canonical)
        .map_err(Rejection::NotFound)?;
    let metadata = file.metadata().map_err(Rejection::NotFound)?;
    let identity = Identity::of(&metadata);
    if !metadata.is_file() {
        return Err(Rejection::NotRegular);
    }
    if (identity.dev, identity.ino) != (validated.dev, validated.ino) {
        return Err(Rejection::NotFound(io::Error::new(
            io::ErrorKind::NotFound,
            "replaced between validation and open",
        )));
    }
    Ok((file, identity))
}

/// Reads at most `len` bytes. Fewer means the file shrank meanwhile; the caller notices from
/// the length.
pub(super) fn read_small(file: File, len: u64) -> io::Result<Bytes> {
    let mut buffer = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut buffer)?;
    Ok(Bytes::from(buffer))
}

/// Streams `range` of `file`. A file that shrinks under us ends the body with an error, so the
/// connection is cut instead of sending fewer bytes than the Content-Length promised.
pub(super) fn stream(file: File, range: Range<u64>) -> Body {
    let file = Arc::new(file);
    let chunks = futures_util::stream::try_unfold(range, move |range| {
        let file = Arc::clone(&file);
        async move {
            if range.is_empty() {
                return Ok(None);
            }
            let want = (range.end - range.start).min(CHUNK);
            let start = range.start;
            let chunk = tokio::task::spawn_blocking(move || read_at(&file, start, want))
                .await
                .map_err(io::Error::other)??;
            let next = range.start + chunk.len() as u64..range.end;
            Ok::<_, io::Error>(Some((Frame::data(chunk), next)))
        }
    });
    body::boxed(StreamBody::new(chunks))
}

fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let mut buffer = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    let read = file.read_at(&mut buffer, offset)?;
    if read == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    buffer.truncate(read);
    Ok(Bytes::from(buffer))
}
