//! HTTP/1.1 message framing over any `Read + Write` byte stream.
//!
//! Heads are parsed by `httparse` (status/request line and headers); this
//! module decides body framing the way RFC 9112 §6.3 says (no body for
//! HEAD/1xx/204/304, `Transfer-Encoding: chunked`, `Content-Length`, else
//! until close for responses), decodes chunked bodies (chunk sizes with
//! `httparse::parse_chunk_size`, trailers with `httparse::parse_headers`)
//! and streams bodies into a callback so multi-MiB transfers never sit in
//! memory. Every limit is explicit and every violation is an error with the
//! reason, never a panic or a silent truncation.

use std::fmt;
use std::io::{self, Read, Write};

/// Largest request/response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields accepted in one head or trailer section.
pub const MAX_HEADERS: usize = 64;
/// Read buffer size (also the largest chunk-size line accepted).
const BUF: usize = 32 * 1024;

/// What went wrong while reading or writing a message.
#[derive(Debug)]
pub enum HttpError {
    /// The stream failed (includes timeouts: `io::ErrorKind::TimedOut`).
    Io(io::Error),
    /// httparse rejected the bytes.
    Parse(httparse::Error),
    /// The peer closed the connection where more bytes were required.
    UnexpectedEof(&'static str),
    /// Well-formed bytes with unacceptable meaning (bad length, framing...).
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "i/o: {e} ({:?})", e.kind()),
            HttpError::Parse(e) => write!(f, "parse: {e}"),
            HttpError::UnexpectedEof(w) => write!(f, "connection closed during {w}"),
            HttpError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

impl HttpError {
    /// Whether this is a read/write timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, HttpError::Io(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes (responses only).
    UntilClose,
}

impl Framing {
    /// Short name for result lines.
    pub fn name(&self) -> &'static str {
        match self {
            Framing::None => "none",
            Framing::Length(_) => "content-length",
            Framing::Chunked => "chunked",
            Framing::UntilClose => "until-close",
        }
    }
}

/// Header fields with owned names and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, Vec<u8>)>);

impl Headers {
    fn from_parsed(h: &[httparse::Header<'_>]) -> Self {
        Headers(
            h.iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect(),
        )
    }

    /// All values of `name` (case-insensitive), as text (invalid UTF-8 is
    /// kept lossily; only ASCII tokens are compared).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
            .collect()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// Whether any comma-separated element of any `name` field equals
    /// `token` (case-insensitive), e.g. `Connection: close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(',').map(str::trim).collect::<Vec<_>>())
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The body framing these headers declare; `None` when they declare
    /// neither Transfer-Encoding nor Content-Length.
    fn declared_framing(&self) -> Result<Option<Framing>, HttpError> {
        let te = self.all("transfer-encoding");
        if !te.is_empty() {
            if !self.all("content-length").is_empty() {
                // RFC 9112 §6.3: a message with both is a smuggling vector.
                return Err(HttpError::Protocol(
                    "both Transfer-Encoding and Content-Length".into(),
                ));
            }
            let codings: Vec<String> = te
                .iter()
                .flat_map(|v| v.split(',').map(|c| c.trim().to_ascii_lowercase()))
                .filter(|c| !c.is_empty())
                .collect();
            return match codings.as_slice() {
                [only] if only == "chunked" => Ok(Some(Framing::Chunked)),
                _ => Err(HttpError::Protocol(format!(
                    "unsupported Transfer-Encoding {codings:?} (only 'chunked')"
                ))),
            };
        }
        let cl = self.all("content-length");
        if cl.is_empty() {
            return Ok(None);
        }
        let mut value: Option<u64> = None;
        for field in &cl {
            for part in field.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::Protocol(format!("bad Content-Length '{field}'")));
                }
                let v: u64 = part
                    .parse()
                    .map_err(|_| HttpError::Protocol(format!("Content-Length too big '{part}'")))?;
                if value.is_some_and(|p| p != v) {
                    return Err(HttpError::Protocol(
                        "conflicting Content-Length values".into(),
                    ));
                }
                value = Some(v);
            }
        }
        Ok(value.map(Framing::Length))
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// HTTP minor version (0 or 1).
    pub minor: u8,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
}

impl ResponseHead {
    /// The body framing for a response to a request with `method`.
    pub fn framing(&self, method: &str) -> Result<Framing, HttpError> {
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(Framing::None);
        }
        Ok(self
            .headers
            .declared_framing()?
            .unwrap_or(Framing::UntilClose))
    }

    /// Whether the connection stays open after this response.
    pub fn keep_alive(&self) -> bool {
        if self.headers.has_token("connection", "close") {
            return false;
        }
        self.minor >= 1 || self.headers.has_token("connection", "keep-alive")
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method (`GET`, `POST`, ...).
    pub method: String,
    /// Request target.
    pub path: String,
    /// HTTP minor version (0 or 1).
    pub minor: u8,
    /// Header fields.
    pub headers: Headers,
}

impl RequestHead {
    /// The body framing (requests without length fields have no body).
    pub fn framing(&self) -> Result<Framing, HttpError> {
        Ok(self.headers.declared_framing()?.unwrap_or(Framing::None))
    }

    /// Whether the client wants the connection kept after the response.
    pub fn keep_alive(&self) -> bool {
        if self.headers.has_token("connection", "close") {
            return false;
        }
        self.minor >= 1 || self.headers.has_token("connection", "keep-alive")
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.minor >= 1 && self.headers.has_token("expect", "100-continue")
    }
}

/// A byte stream with a read buffer, reading HTTP messages.
pub struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes received from the stream so far (heads and bodies).
    pub bytes_in: u64,
    /// Bytes written to the stream so far.
    pub bytes_out: u64,
}

impl<S: Read + Write> Conn<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: vec![0; BUF],
            start: 0,
            end: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The underlying stream (buffered unread bytes are dropped).
    pub fn into_inner(self) -> S {
        self.stream
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes after the buffered ones; Ok(0) = EOF. Errors if the
    /// buffer is full of unconsumed bytes (the caller's limit was exceeded).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read buffer full without a complete element",
            ));
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        self.bytes_in += n as u64;
        Ok(n)
    }

    /// Writes all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), HttpError> {
        self.stream.write_all(data)?;
        self.bytes_out += data.len() as u64;
        Ok(())
    }

    /// Reads until a complete head parses with `parse` (which returns the
    /// head and its length); `Ok(None)` on EOF before any byte if
    /// `eof_ok`.
    fn read_head<T>(
        &mut self,
        eof_ok: bool,
        what: &'static str,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, httparse::Error>,
    ) -> Result<Option<T>, HttpError> {
        loop {
            if !self.buffered().is_empty() {
                match parse(self.buffered()).map_err(HttpError::Parse)? {
                    Some((head, n)) => {
                        self.start += n;
                        return Ok(Some(head));
                    }
                    None if self.buffered().len() >= MAX_HEAD => {
                        return Err(HttpError::Protocol(format!(
                            "{what} head longer than {MAX_HEAD} bytes"
                        )));
                    }
                    None => {}
                }
            }
            if self.fill()? == 0 {
                return if eof_ok && self.buffered().is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::UnexpectedEof(what))
                };
            }
        }
    }

    /// Reads one response head.
    pub fn read_response_head(&mut self) -> Result<ResponseHead, HttpError> {
        self.read_head(false, "response head", |b| {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut h);
            Ok(match r.parse(b)? {
                httparse::Status::Complete(n) => Some((
                    ResponseHead {
                        minor: r.version.unwrap_or(1),
                        status: r.code.unwrap_or(0),
                        reason: r.reason.unwrap_or("").to_string(),
                        headers: Headers::from_parsed(r.headers),
                    },
                    n,
                )),
                httparse::Status::Partial => None,
            })
        })?
        .ok_or(HttpError::UnexpectedEof("response head"))
    }

    /// Reads one request head; `Ok(None)` if the peer closed cleanly
    /// between requests.
    pub fn read_request_head(&mut self) -> Result<Option<RequestHead>, HttpError> {
        self.read_head(true, "request head", |b| {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Request::new(&mut h);
            Ok(match r.parse(b)? {
                httparse::Status::Complete(n) => Some((
                    RequestHead {
                        method: r.method.unwrap_or("").to_string(),
                        path: r.path.unwrap_or("").to_string(),
                        minor: r.version.unwrap_or(1),
                        headers: Headers::from_parsed(r.headers),
                    },
                    n,
                )),
                httparse::Status::Partial => None,
            })
        })
    }

    /// Streams up to `limit` body bytes framed by `framing` into `sink`;
    /// returns the body length. A body longer than `limit` is an error (the
    /// rest is not read).
    pub fn read_body(
        &mut self,
        framing: Framing,
        limit: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, HttpError> {
        match framing {
            Framing::None => Ok(0),
            Framing::Length(n) => {
                if n > limit {
                    return Err(HttpError::Protocol(format!(
                        "body of {n} bytes exceeds {limit}"
                    )));
                }
                self.read_exact_into(n, "body", sink)?;
                Ok(n)
            }
            Framing::UntilClose => {
                let mut total = 0u64;
                loop {
                    if !self.buffered().is_empty() {
                        let n = self.buffered().len();
                        total += n as u64;
                        if total > limit {
                            return Err(HttpError::Protocol(format!("body exceeds {limit} bytes")));
                        }
                        sink(self.buffered());
                        self.start = self.end;
                    }
                    if self.fill()? == 0 {
                        return Ok(total);
                    }
                }
            }
            Framing::Chunked => self.read_chunked(limit, sink),
        }
    }

    fn read_exact_into(
        &mut self,
        mut n: u64,
        what: &'static str,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), HttpError> {
        while n > 0 {
            if self.buffered().is_empty() && self.fill()? == 0 {
                return Err(HttpError::UnexpectedEof(what));
            }
            let take = self
                .buffered()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            sink(&self.buf[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    fn read_chunked(&mut self, limit: u64, sink: &mut dyn FnMut(&[u8])) -> Result<u64, HttpError> {
        let mut total = 0u64;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(self.buffered()) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.start += n;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.fill()? == 0 {
                            return Err(HttpError::UnexpectedEof("chunk size"));
                        }
                    }
                    Err(httparse::InvalidChunkSize) => {
                        return Err(HttpError::Protocol("invalid chunk size line".into()));
                    }
                }
            };
            if size == 0 {
                self.read_trailers()?;
                return Ok(total);
            }
            total = total
                .checked_add(size)
                .filter(|t| *t <= limit)
                .ok_or_else(|| {
                    HttpError::Protocol(format!("chunked body exceeds {limit} bytes"))
                })?;
            self.read_exact_into(size, "chunk data", sink)?;
            while self.buffered().len() < 2 {
                if self.fill()? == 0 {
                    return Err(HttpError::UnexpectedEof("chunk CRLF"));
                }
            }
            if self.buffered()[..2] != *b"\r\n" {
                return Err(HttpError::Protocol(
                    "chunk data not followed by CRLF".into(),
                ));
            }
            self.start += 2;
        }
    }

    fn read_trailers(&mut self) -> Result<(), HttpError> {
        self.read_head(false, "chunked trailers", |b| {
            let mut h = [httparse::EMPTY_HEADER; MAX_HEADERS];
            Ok(match httparse::parse_headers(b, &mut h)? {
                httparse::Status::Complete((n, _)) => Some(((), n)),
                httparse::Status::Partial => None,
            })
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A stream that replays `input` in reads of at most `step` bytes and
    /// records writes.
    struct Script {
        input: Cursor<Vec<u8>>,
        step: usize,
        out: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(input: &[u8], step: usize) -> Conn<Script> {
        Conn::new(Script {
            input: Cursor::new(input.to_vec()),
            step,
            out: Vec::new(),
        })
    }

    fn body(c: &mut Conn<Script>, f: Framing) -> Result<Vec<u8>, HttpError> {
        let mut v = Vec::new();
        c.read_body(f, 1 << 20, &mut |b| v.extend_from_slice(b))?;
        Ok(v)
    }

    #[test]
    fn chunked_response_with_trailers_in_one_byte_reads() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n\
                    HTTP/1.1 204 No Content\r\n\r\n";
        for step in [1, 3, 4096] {
            let mut c = conn(raw, step);
            let h = c.read_response_head().unwrap();
            assert_eq!((h.status, h.minor, h.reason.as_str()), (200, 1, "OK"));
            let f = h.framing("GET").unwrap();
            assert_eq!(f, Framing::Chunked);
            assert_eq!(body(&mut c, f).unwrap(), b"helloabcdefghijklmnopqrstuvwxyz");
            // The next message on the same connection parses cleanly.
            let h2 = c.read_response_head().unwrap();
            assert_eq!(h2.status, 204);
            assert_eq!(h2.framing("GET").unwrap(), Framing::None);
            assert!(h2.keep_alive());
        }
    }

    #[test]
    fn content_length_and_until_close() {
        let mut c = conn(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef", 2);
        let h = c.read_response_head().unwrap();
        assert!(!h.keep_alive());
        assert_eq!(body(&mut c, h.framing("GET").unwrap()).unwrap(), b"abc");
        let mut c = conn(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
            5,
        );
        let h = c.read_response_head().unwrap();
        assert!(!h.keep_alive());
        let f = h.framing("GET").unwrap();
        assert_eq!(f, Framing::UntilClose);
        assert_eq!(body(&mut c, f).unwrap(), b"until the end");
        // HEAD: no body even with Content-Length.
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 64);
        assert_eq!(
            c.read_response_head().unwrap().framing("HEAD").unwrap(),
            Framing::None
        );
    }

    #[test]
    fn truncated_and_malformed_messages_are_errors() {
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 64);
        let h = c.read_response_head().unwrap();
        let e = body(&mut c, h.framing("GET").unwrap()).unwrap_err();
        assert!(matches!(e, HttpError::UnexpectedEof("body")), "{e}");
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Le", 64);
        assert!(matches!(
            c.read_response_head(),
            Err(HttpError::UnexpectedEof(_))
        ));
        let mut c = conn(b"HTTP/1.1 2x0 OK\r\n\r\n", 64);
        assert!(matches!(c.read_response_head(), Err(HttpError::Parse(_))));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
        ] {
            let mut c = conn(bad, 64);
            let h = c.read_response_head().unwrap();
            assert!(matches!(h.framing("GET"), Err(HttpError::Protocol(_))));
        }
        let mut c = conn(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
            64,
        );
        let h = c.read_response_head().unwrap();
        assert!(matches!(
            body(&mut c, h.framing("GET").unwrap()),
            Err(HttpError::Protocol(_))
        ));
        let mut c = conn(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            64,
        );
        let h = c.read_response_head().unwrap();
        assert!(matches!(
            body(&mut c, h.framing("GET").unwrap()),
            Err(HttpError::Protocol(_))
        ));
        // Over the limit.
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 64);
        let h = c.read_response_head().unwrap();
        let e = c
            .read_body(h.framing("GET").unwrap(), 99, &mut |_| {})
            .unwrap_err();
        assert!(matches!(e, HttpError::Protocol(_)));
        // A head that never ends.
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let mut c = conn(&long, 4096);
        assert!(matches!(
            c.read_response_head(),
            Err(HttpError::Protocol(_))
        ));
    }

    #[test]
    fn requests_pipeline_and_eof_between_requests() {
        let raw =
            b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nabcd\
                    GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut c = conn(raw, 7);
        let r = c.read_request_head().unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/u"));
        assert!(r.expects_continue() && r.keep_alive());
        assert_eq!(body(&mut c, r.framing().unwrap()).unwrap(), b"abcd");
        let r = c.read_request_head().unwrap().unwrap();
        assert_eq!(r.framing().unwrap(), Framing::None);
        assert!(!r.keep_alive());
        assert!(c.read_request_head().unwrap().is_none());
        // EOF in the middle of a head is not a clean close.
        let mut c = conn(b"GET / HT", 64);
        assert!(matches!(
            c.read_request_head(),
            Err(HttpError::UnexpectedEof(_))
        ));
        c.write_all(b"x").unwrap();
        assert_eq!(c.bytes_out, 1);
    }
}
