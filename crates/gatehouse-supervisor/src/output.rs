//! Worker stdout and stderr, line by line, into gatehouse's log.
//!
//! Every line becomes one `info` event with the fields `app`, `worker` (the slot), `pid` and
//! `stream` (`stdout` or `stderr`). Both streams log at the same level on purpose: gatehouse cannot
//! know the severity of a line, and stderr is where Python's `logging`, Gunicorn's own log and
//! tracebacks all go, so logging stderr as `warn` would turn every routine app log line into a
//! warning. Filter or route by the `stream` field instead.
//!
//! Lines are cut at `MAX_LINE` bytes (the rest of the line is dropped and the event gets the field
//! `truncated = true`), so a worker that writes without newlines cannot grow gatehouse's memory.
//! Bytes that are not UTF-8 are replaced.

use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// The longest line kept, in bytes.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Which worker a line came from.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    app: Arc<str>,
    slot: usize,
    pid: u32,
}

impl Source {
    pub fn new(app: &str, slot: usize, pid: u32) -> Source {
        Source {
            app: Arc::from(app),
            slot,
            pid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Logs every line of `pipe` until it closes (when the worker and everything it started that
/// shares the pipe are gone).
pub(crate) fn capture<R>(pipe: R, source: Source, stream: Stream)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let result = read_lines(BufReader::new(pipe), MAX_LINE, |line, truncated| {
            let (app, slot, pid, stream) = (&*source.app, source.slot, source.pid, stream.as_str());
            if truncated {
                tracing::info!(app, worker = slot, pid, stream, truncated, "{line}");
            } else {
                tracing::info!(app, worker = slot, pid, stream, "{line}");
            }
        })
        .await;
        if let Err(err) = result {
            let (app, pid) = (&*source.app, source.pid);
            tracing::debug!(app, pid, error = %err, "worker output closed");
        }
    });
}

/// Calls `each(line, truncated)` for every line of `reader`, without its line ending, keeping at
/// most `max` bytes of each. A last line without a newline counts too.
async fn read_lines<R, F>(mut reader: R, max: usize, mut each: F) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(&str, bool),
{
    let mut line = Vec::with_capacity(256);
    let mut truncated = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            if !line.is_empty() || truncated {
                emit(&mut line, &mut truncated, &mut each);
            }
            return Ok(());
        }
        let (chunk, used, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(end) => (&buf[..end], end + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if complete {
            emit(&mut line, &mut truncated, &mut each);
        }
    }
}

fn emit<F: FnMut(&str, bool)>(line: &mut Vec<u8>, truncated: &mut bool, each: &mut F) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    each(&String::from_utf8_lossy(line), *truncated);
    line.clear();
    *truncated = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        // A tiny buffer makes lines span several reads.
        let reader = BufReader::with_capacity(4, input);
        read_lines(reader, max, |line, truncated| {
            out.push((line.to_owned(), truncated))
        })
        .await
        .unwrap();
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_the_last_one() {
        let got = lines(b"one\r\ntwo\n\nlast", 100).await;
        let want = [("one", false), ("two", false), ("", false), ("last", false)];
        assert_eq!(
            got,
            want.map(|(l, t)| (l.to_owned(), t)).to_vec(),
            "CRLF, empty lines and an unterminated last line"
        );
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let got = lines(b"abcdefghij\nok\nxyz", 5).await;
        assert_eq!(
            got,
            vec![
                ("abcde".to_owned(), true),
                ("ok".to_owned(), false),
                ("xyz".to_owned(), false)
            ]
        );
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced() {
        let got = lines(b"a\xffb\n", 100).await;
        assert_eq!(got, vec![("a\u{fffd}b".to_owned(), false)]);
    }
}
