//! HTTP/1.1 GETs over a unix socket (the Docker Engine API and CRI-O's inspect endpoint): one
//! connection per request, as the daemons expect from short-lived clients.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::BoxError;

/// The most a single answer may hold (a `containers/json` of thousands of containers is a few
/// MiB).
const MAX_BODY: usize = 64 << 20;

#[derive(Debug, Clone)]
pub(super) struct UnixHttp {
    pub socket: PathBuf,
    pub timeout: Duration,
}

impl UnixHttp {
    /// Sends `GET path` and returns the response head, within the request timeout (a daemon
    /// that takes the connection and never answers must not hold an event stream's session
    /// forever); the body streams, for as long as it lasts.
    pub async fn send(&self, path: &str) -> Result<Response<Incoming>, BoxError> {
        let head = async {
            let stream = tokio::net::UnixStream::connect(&self.socket).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = Request::get(path)
                .header(hyper::header::HOST, "localhost")
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::<Bytes>::new())?;
            Ok::<_, BoxError>(sender.send_request(req).await?)
        };
        match tokio::time::timeout(self.timeout, head).await {
            Ok(r) => r,
            Err(_) => Err(format!("GET {path}: no answer within {:?}", self.timeout).into()),
        }
    }

    /// `GET path`: the status and the whole body, within the request timeout.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Bytes), BoxError> {
        let work = async {
            let resp = self.send(path).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, BoxError>((status, body))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("GET {path}: no answer within {:?}", self.timeout).into()),
        }
    }
}

/// The most one streamed value may hold: an event is well under a KiB. An unfinished value is
/// parsed again as each chunk arrives, so this also bounds that work.
const MAX_VALUE: usize = 1 << 20;

/// Splits a stream of JSON values (newline-separated or not) as bytes arrive. A value over
/// `MAX_VALUE` is dropped, to its line's end when one has come, else whole.
#[derive(Debug, Default)]
pub(super) struct JsonStream {
    buf: Vec<u8>,
}

impl JsonStream {
    /// Appends `chunk` and returns the complete values it finishes. A value that does not
    /// parse is skipped up to the next newline.
    pub fn push<T: serde::de::DeserializeOwned>(&mut self, chunk: &[u8]) -> Vec<T> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut consumed = 0;
        loop {
            let rest = &self.buf[consumed..];
            let start = rest
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            if start == rest.len() {
                consumed = self.buf.len();
                break;
            }
            let mut it = serde_json::Deserializer::from_slice(&rest[start..]).into_iter::<T>();
            match it.next() {
                Some(Ok(v)) => {
                    consumed += start + it.byte_offset();
                    out.push(v);
                }
                Some(Err(e)) if e.is_eof() => {
                    // An unfinished value: wait for the rest, unless it is already too long
                    // (an unterminated string in an endless stream would grow forever).
                    consumed += start;
                    if rest.len() - start > MAX_VALUE {
                        match rest[start..].iter().position(|&b| b == b'\n') {
                            Some(nl) => {
                                consumed += nl + 1;
                                continue;
                            }
                            None => consumed = self.buf.len(),
                        }
                    }
                    break;
                }
                Some(Err(_)) => match rest[start..].iter().position(|&b| b == b'\n') {
                    Some(nl) => consumed += start + nl + 1,
                    None => {
                        // Wait for the end of the line; do not grow without bound.
                        if rest.len() - start > MAX_VALUE {
                            consumed = self.buf.len();
                        }
                        break;
                    }
                },
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct V {
        a: u32,
    }

    #[test]
    fn json_stream_splits_values_across_chunks() {
        let mut s = JsonStream::default();
        assert_eq!(s.push::<V>(b"{\"a\":1}\n{\"a\""), vec![V { a: 1 }]);
        assert_eq!(s.push::<V>(b":2}"), vec![V { a: 2 }]);
        assert_eq!(s.push::<V>(b"\n"), vec![]);
        assert_eq!(
            s.push::<V>(b"{\"a\":3}{\"a\":4}\r\n"),
            vec![V { a: 3 }, V { a: 4 }]
        );
        // A value of another shape is skipped to the end of its line.
        assert_eq!(s.push::<V>(b"{\"b\":1}\n{\"a\":5}\n"), vec![V { a: 5 }]);
        assert_eq!(s.push::<V>(b"garbage\n{\"a\":6}\n"), vec![V { a: 6 }]);
        assert!(s.buf.is_empty());
    }

    #[tokio::test]
    async fn a_daemon_that_never_answers_an_event_stream_times_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("mute.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        // Takes the connection, reads nothing, answers nothing.
        let held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let http = UnixHttp {
            socket,
            timeout: Duration::from_millis(200),
        };
        let started = std::time::Instant::now();
        let e = http.send("/events").await.expect_err("no answer");
        assert!(e.to_string().contains("no answer within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();
    }

    #[test]
    fn an_endless_value_is_dropped_not_held() {
        let mut s = JsonStream::default();
        assert_eq!(s.push::<V>(b"{\"a\":\""), vec![]);
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..(2 * MAX_VALUE / chunk.len()) {
            assert_eq!(s.push::<V>(&chunk), vec![]);
            assert!(
                s.buf.len() <= MAX_VALUE + chunk.len(),
                "{} held",
                s.buf.len()
            );
        }
        // The stream goes on: the next line's value is read.
        assert_eq!(s.push::<V>(b"\"}\n{\"a\":7}\n"), vec![V { a: 7 }]);
    }
}
