//! A byte-at-a-time look at an HTTP/1 request head as it arrives, for the two facts hyper does
//! not pass on: how long the request line is (414 above [`MAX_REQUEST_LINE`]), and whether the
//! head carried both `Content-Length` and `Transfer-Encoding` (hyper drops the Content-Length and
//! carries on; we refuse the request, as a smuggling attempt, with 400).
//!
//! It only ever sees heads that start at a read boundary between requests; a head pipelined
//! behind a body is not scanned, which costs nothing in safety because hyper frames every
//! forwarded body itself.

/// The longest request line accepted (Nginx's default header buffer); longer gets 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// What a completed scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadFacts {
    pub length_and_chunked: bool,
}

#[derive(Debug, Default)]
pub struct HeadScanner {
    /// Bytes of the request line so far; `None` once the line ended.
    request_line: Option<usize>,
    /// The start of the current header line, lower-cased, enough to recognise the two names.
    line_start: [u8; NAME_PREFIX],
    line_len: usize,
    saw_content_length: bool,
    saw_transfer_encoding: bool,
    /// The previous line was empty so far (for spotting the blank line that ends the head).
    line_empty: bool,
}

const NAME_PREFIX: usize = 18; // "transfer-encoding:".len()

/// The result of feeding bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The head goes on.
    More,
    /// The request line is longer than the limit.
    RequestLineTooLong,
    /// The head ended; the rest of the bytes (if any) are the body or another request.
    Done(HeadFacts),
}

impl HeadScanner {
    pub fn new() -> Self {
        HeadScanner {
            request_line: Some(0),
            line_empty: false,
            ..HeadScanner::default()
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Scan {
        for &byte in bytes {
            if let Some(length) = self.request_line {
                if byte == b'\n' {
                    self.request_line = None;
                    self.start_line();
                } else if length + 1 > MAX_REQUEST_LINE {
                    return Scan::RequestLineTooLong;
                } else {
                    self.request_line = Some(length + 1);
                }
                continue;
            }
            match byte {
                b'\n' => {
                    if self.line_empty {
                        return Scan::Done(HeadFacts {
                            length_and_chunked: self.saw_content_length
                                && self.saw_transfer_encoding,
                        });
                    }
                    self.note_header_name();
                    self.start_line();
                }
                b'\r' => {}
                other => {
                    self.line_empty = false;
                    if self.line_len < NAME_PREFIX {
                        self.line_start[self.line_len] = other.to_ascii_lowercase();
                        self.line_len += 1;
                    }
                }
            }
        }
        Scan::More
    }

    fn start_line(&mut self) {
        self.line_len = 0;
        self.line_empty = true;
    }

    fn note_header_name(&mut self) {
        let start = &self.line_start[..self.line_len];
        if start.starts_with(b"content-length:") || start.starts_with(b"content-length ") {
            self.saw_content_length = true;
        }
        if start.starts_with(b"transfer-encoding") {
            self.saw_transfer_encoding = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(head: &[u8], piece: usize) -> Scan {
        let mut scanner = HeadScanner::new();
        for chunk in head.chunks(piece) {
            match scanner.feed(chunk) {
                Scan::More => continue,
                other => return other,
            }
        }
        Scan::More
    }

    #[test]
    fn plain_head() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        for piece in [1, 2, 7, head.len()] {
            assert_eq!(
                scan_in_pieces(head, piece),
                Scan::Done(HeadFacts::default())
            );
        }
    }

    #[test]
    fn both_framings_are_flagged_in_any_order_and_case() {
        let flagged = Scan::Done(HeadFacts {
            length_and_chunked: true,
        });
        let heads: [&[u8]; 2] = [
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-LENGTH: 3\r\n\r\n",
            b"POST / HTTP/1.1\nCONTENT-LENGTH: 3\nTransfer-Encoding: chunked\n\n",
        ];
        for head in heads {
            for piece in [1, 3, head.len()] {
                assert_eq!(scan_in_pieces(head, piece), flagged);
            }
        }
    }

    #[test]
    fn long_request_line() {
        let line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(
            scan_in_pieces(line.as_bytes(), 4096),
            Scan::RequestLineTooLong
        );
        let fits = format!(
            "GET /{} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE - 20)
        );
        assert!(matches!(
            scan_in_pieces(fits.as_bytes(), 4096),
            Scan::Done(_)
        ));
    }
}
