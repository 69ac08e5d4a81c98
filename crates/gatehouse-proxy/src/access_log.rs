//! The access log: one line per answered request, written off the request path.
//!
//! Requests hand a [`Record`] to a bounded channel; one writer thread formats and writes it. When
//! the disk is slow or full the channel fills and records are dropped (and counted) instead of
//! stalling requests. Formats: `combined` (Nginx/Apache), `json`, or a Gunicorn-style format
//! string (see [`format`]).

mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::model::{AccessFormat, AccessLogTarget};

pub use format::Format;

/// Records waiting to be written; beyond this, new records are dropped.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// Everything any format may print about one request.
#[derive(Debug, Clone)]
pub struct Record {
    pub time: SystemTime,
    pub client_ip: IpAddr,
    pub method: http::Method,
    /// Path and query as received.
    pub target: String,
    pub version: http::Version,
    pub status: u16,
    pub response_bytes: u64,
    pub duration: Duration,
    pub request_id: String,
    pub host: Option<String>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The route prefix that answered (`None` when no route matched).
    pub route: Option<String>,
    /// The upstream server or worker that answered, and how long it took.
    pub served_by: Option<String>,
    pub upstream_time: Option<Duration>,
    /// How long the request waited in its app's queue for a worker slot (apps only).
    pub queue_time: Option<Duration>,
    /// Request and response headers a Gunicorn-style format asks for (`%({name}i)s`, `%({name}o)s`).
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
}

/// Messages for the writer thread.
enum Message {
    Record(Box<Record>),
    /// Reopen the file (logrotate moved it away; SIGUSR1).
    Reopen,
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<SyncSender<Message>>,
    format: Arc<Format>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// A log that writes nothing.
    pub fn off() -> Self {
        AccessLog {
            sender: None,
            format: Arc::new(Format::Combined),
            dropped: Arc::default(),
        }
    }

    /// Starts the writer thread for `target`. Fails only when a log file cannot be opened.
    pub fn start(target: &AccessLogTarget, format: &AccessFormat) -> io::Result<Self> {
        let sink = match target {
            AccessLogTarget::Off => return Ok(AccessLog::off()),
            AccessLogTarget::Stdout => Sink::Stdout,
            AccessLogTarget::File(path) => Sink::File {
                file: BufWriter::new(open_append(path)?),
                path: path.clone(),
            },
        };
        let format = Arc::new(Format::compile(format));
        let (sender, receiver) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer_format = Arc::clone(&format);
        std::thread::Builder::new()
            .name("gatehouse-access-log".into())
            .spawn(move || write_loop(receiver, sink, &writer_format))?;
        Ok(AccessLog {
            sender: Some(sender),
            format,
            dropped: Arc::default(),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Header names the format needs copied into records (lower-case): (request, response).
    pub fn wanted_headers(&self) -> (&[String], &[String]) {
        self.format.wanted_headers()
    }

    /// Queues a record; never blocks.
    pub fn log(&self, record: Record) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "access log cannot keep up; records dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Asks the writer to reopen its file (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(sender) = &self.sender {
            let _ = sender.try_send(Message::Reopen);
        }
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Sink {
    Stdout,
    File {
        file: BufWriter<File>,
        path: PathBuf,
    },
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(receiver: Receiver<Message>, mut sink: Sink, format: &Format) {
    let mut line = String::with_capacity(512);
    let mut stdout = BufWriter::new(io::stdout());
    loop {
        // Flush whenever the queue runs dry, so lines appear promptly without a write per record.
        let message = match receiver.try_recv() {
            Ok(message) => message,
            Err(_) => {
                flush(&mut sink, &mut stdout);
                match receiver.recv_timeout(Duration::from_secs(1)) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        match message {
            Message::Record(record) => {
                line.clear();
                format.render(&record, &mut line);
                line.push('\n');
                let result = match &mut sink {
                    Sink::Stdout => stdout.write_all(line.as_bytes()),
                    Sink::File { file, .. } => file.write_all(line.as_bytes()),
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "cannot write the access log");
                }
            }
            Message::Reopen => {
                if let Sink::File { file, path } = &mut sink {
                    let _ = file.flush();
                    match open_append(path) {
                        Ok(reopened) => *file = BufWriter::new(reopened),
                        Err(error) => {
                            tracing::warn!(%error, path = %path.display(), "cannot reopen the access log")
                        }
                    }
                }
            }
        }
    }
    flush(&mut sink, &mut stdout);
}

fn flush(sink: &mut Sink, stdout: &mut BufWriter<io::Stdout>) {
    let result = match sink {
        Sink::Stdout => stdout.flush(),
        Sink::File { file, .. } => file.flush(),
    };
    if let Err(error) = result {
        tracing::warn!(%error, "cannot flush the access log");
    }
}
