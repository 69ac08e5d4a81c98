//! Buffering whole bodies, the job Gunicorn's docs give to Nginx: a slow client's upload is read
//! completely before a sync worker is taken, and a worker's response is read completely so the
//! worker is free while a slow client downloads.
//!
//! Up to [`MEMORY_LIMIT`] bytes stay in memory; beyond that the body is spooled to an anonymous
//! temporary file (already unlinked, so nothing is left behind even after a crash).

use std::io::{self, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::body::{self, Body, BoxError};

/// Bytes of one body kept in memory before spilling to disk.
pub const MEMORY_LIMIT: usize = 1024 * 1024;

/// Chunk size when reading a spooled file back.
const READ_CHUNK: usize = 64 * 1024;

/// A body read to its end.
pub enum Spooled {
    Memory(Bytes),
    File { file: tokio::fs::File, len: u64 },
}

impl Spooled {
    /// Reads `body` to its end. Bodies above [`MEMORY_LIMIT`] go to a temporary file in `dir`.
    pub async fn collect(mut body: Body, dir: &Path) -> Result<Spooled, BoxError> {
        let mut memory = BytesMut::new();
        let mut file: Option<tokio::fs::File> = None;
        let mut len: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // Trailers are not forwarded by a buffered exchange.
            };
            len += data.len() as u64;
            match &mut file {
                Some(file) => file.write_all(&data).await?,
                None if memory.len() + data.len() > MEMORY_LIMIT => {
                    let mut spill = tokio::fs::File::from_std(tempfile::tempfile_in(dir)?);
                    spill.write_all(&memory).await?;
                    spill.write_all(&data).await?;
                    memory = BytesMut::new();
                    file = Some(spill);
                }
                None => memory.extend_from_slice(&data),
            }
        }
        match file {
            None => Ok(Spooled::Memory(memory.freeze())),
            Some(mut file) => {
                file.flush().await?;
                file.seek(SeekFrom::Start(0)).await?;
                Ok(Spooled::File { file, len })
            }
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A body that replays what was collected, with an exact size hint.
    pub fn into_body(self) -> Body {
        match self {
            Spooled::Memory(bytes) if bytes.is_empty() => body::empty(),
            Spooled::Memory(bytes) => body::full(bytes),
            Spooled::File { file, len } => body::boxed(FileBody {
                file: Some(file),
                remaining: len,
                reading: None,
            }),
        }
    }
}

type ReadFuture =
    Pin<Box<dyn std::future::Future<Output = io::Result<(tokio::fs::File, Bytes)>> + Send>>;

/// Streams a spooled file back in chunks.
struct FileBody {
    /// `None` while a read is in progress (the future owns it).
    file: Option<tokio::fs::File>,
    remaining: u64,
    reading: Option<ReadFuture>,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if self.reading.is_none() {
            let Some(mut file) = self.file.take() else {
                return Poll::Ready(None);
            };
            let want = usize::try_from(self.remaining.min(READ_CHUNK as u64)).unwrap_or(READ_CHUNK);
            self.reading = Some(Box::pin(async move {
                let mut buffer = vec![0u8; want];
                file.read_exact(&mut buffer).await?;
                Ok((file, Bytes::from(buffer)))
            }));
        }
        let Some(reading) = self.reading.as_mut() else {
            return Poll::Ready(None);
        };
        match reading.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.reading = None;
                match result {
                    Ok((file, chunk)) => {
                        self.file = Some(file);
                        self.remaining -= chunk.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Err(error) => {
                        self.remaining = 0;
                        Poll::Ready(Some(Err(error)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(size: usize) -> (bool, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let spooled = Spooled::collect(body::full(data.clone()), dir.path())
            .await
            .unwrap();
        let on_disk = matches!(spooled, Spooled::File { .. });
        assert_eq!(spooled.len(), size as u64);
        let body = spooled.into_body();
        assert_eq!(body.size_hint().exact(), Some(size as u64));
        let collected = body.collect().await.unwrap().to_bytes().to_vec();
        assert_eq!(collected, data);
        (on_disk, collected)
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory() {
        assert!(!round_trip(1000).await.0);
        assert!(!round_trip(0).await.0);
    }

    #[tokio::test]
    async fn large_bodies_spill_to_disk_and_replay_exactly() {
        assert!(round_trip(MEMORY_LIMIT * 3 + 17).await.0);
    }
}
