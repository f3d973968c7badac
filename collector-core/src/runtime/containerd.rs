//! containerd's gRPC API on its unix socket: HTTP/2 (prior knowledge) through hyper, the few
//! messages used declared by hand with `prost` (no `.proto` compilation, so no `protoc`).
//!
//! - `Namespaces/List`, then `Containers/List` in each namespace (the `containerd-namespace`
//!   header) for the table;
//! - `Events/Subscribe` with the `/containers/create|update|delete` topics to hear of changes
//!   (then `Containers/Get` for the one container);
//! - a re-list every `relist_interval` as a backstop.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::sync::mpsc;

use super::{
    metadata, safe_id, AbortOnDrop, BoxError, ContainerdConfig, Record, Shared, Table, Want,
};

const NAMESPACES_LIST: &str = "/containerd.services.namespaces.v1.Namespaces/List";
const CONTAINERS_LIST: &str = "/containerd.services.containers.v1.Containers/List";
const CONTAINERS_GET: &str = "/containerd.services.containers.v1.Containers/Get";
const EVENTS_SUBSCRIBE: &str = "/containerd.services.events.v1.Events/Subscribe";

/// The largest gRPC message accepted (containerd's own send limit is 16 MiB; a `List` carries
/// each container's OCI spec).
const MAX_MESSAGE: usize = 64 << 20;

/// The largest event envelope taken: one tells of a container by id, well under a KiB. A
/// stream sending more is cut (and followed again after back-off).
const MAX_EVENT: usize = 1 << 20;

/// An id asked for and not found is not asked for again before this.
const ASK_AGAIN: Duration = Duration::from_secs(10);

/// gRPC's NOT_FOUND.
const NOT_FOUND: u32 = 5;

// The messages, as in containerd's `api/services/*/v1/*.proto` (fields not used are skipped
// by the decoder).

#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(btree_map = "string, string", tag = "2")]
    labels: BTreeMap<String, String>,
    #[prost(string, tag = "3")]
    image: String,
}

#[derive(Clone, PartialEq, Message)]
struct ListContainersRequest {
    #[prost(string, repeated, tag = "1")]
    filters: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    containers: Vec<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct GetContainerRequest {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, Message)]
struct GetContainerResponse {
    #[prost(message, optional, tag = "1")]
    container: Option<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ListNamespacesRequest {
    #[prost(string, tag = "1")]
    filter: String,
}

#[derive(Clone, PartialEq, Message)]
struct ListNamespacesResponse {
    #[prost(message, repeated, tag = "1")]
    namespaces: Vec<Namespace>,
}

#[derive(Clone, PartialEq, Message)]
struct SubscribeRequest {
    #[prost(string, repeated, tag = "1")]
    filters: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Envelope {
    #[prost(string, tag = "2")]
    namespace: String,
    #[prost(string, tag = "3")]
    topic: String,
    #[prost(message, optional, tag = "4")]
    event: Option<Any>,
}

/// `ContainerCreate`, `ContainerUpdate` and `ContainerDelete` all start with the id.
#[derive(Clone, PartialEq, Message)]
struct ContainerEvent {
    #[prost(string, tag = "1")]
    id: String,
}

/// A container event as the session acts on it. The stream's reader makes it from the
/// envelope, so what waits for the session is small whatever the runtime sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    namespace: String,
    id: String,
    deleted: bool,
}

/// The change an envelope tells of: `None` for other topics, and for a namespace or an id
/// containerd would not have made (a lying stream's; the namespace would be sent back in a
/// request header, the id in a request).
fn change(e: Envelope) -> Option<Change> {
    let deleted = match e.topic.as_str() {
        "/containers/delete" => true,
        "/containers/create" | "/containers/update" => false,
        _ => return None,
    };
    let ev = ContainerEvent::decode(e.event?.value.as_slice()).ok()?;
    (valid_namespace(&e.namespace) && safe_id(&ev.id)).then_some(Change {
        namespace: e.namespace,
        id: ev.id,
        deleted,
    })
}

/// containerd's rule for a namespace (`identifiers.Validate`): 1 to 76 letters and digits,
/// with single `.`, `_` or `-` between them.
fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    let sep = |c: &u8| matches!(c, b'.' | b'_' | b'-');
    (1..=76).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || sep(c))
        && !b.first().is_some_and(sep)
        && !b.last().is_some_and(sep)
        && !b.windows(2).any(|w| sep(&w[0]) && sep(&w[1]))
}

/// Why a call failed: the server's gRPC status, an answer that is not the message it should
/// be, or the transport.
#[derive(Debug)]
enum CallError {
    Status(u32, String),
    Decode(prost::DecodeError),
    Transport(BoxError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(code, msg) => write!(f, "gRPC status {code}: {msg}"),
            CallError::Decode(e) => write!(f, "{e}"),
            CallError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CallError {}

fn transport<E: Into<BoxError>>(e: E) -> CallError {
    CallError::Transport(e.into())
}

/// Prefixes a message with gRPC's 5-byte header (not compressed, length).
fn frame<M: Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut b = Vec::with_capacity(5 + len);
    b.push(0);
    b.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut b).expect("a Vec grows");
    b.into()
}

/// Decodes a stream of gRPC frames as containerd's answers would be read: each message as
/// a container list, a container and an event envelope, and the envelope's event. Returns
/// how many whole messages there were.
#[cfg(feature = "fuzzing")]
pub(super) fn fuzz_frames(chunks: &[&[u8]]) -> usize {
    let mut frames = Frames::default();
    let mut n = 0;
    for chunk in chunks {
        frames.push(chunk);
        while let Ok(Some(msg)) = frames.next() {
            n += 1;
            if let Ok(r) = ListContainersResponse::decode(msg.clone()) {
                for c in r.containers {
                    let _ = metadata(&c.id, &c.image, c.labels);
                }
            }
            if let Ok(GetContainerResponse { container: Some(c) }) =
                GetContainerResponse::decode(msg.clone())
            {
                let _ = metadata(&c.id, &c.image, c.labels);
            }
            if let Ok(e) = Envelope::decode(msg) {
                let _ = change(e);
            }
        }
    }
    n
}

/// Cuts gRPC messages out of a byte stream. A message's length is checked as soon as its
/// 5-byte header has come, before its bytes are held.
#[derive(Debug)]
struct Frames {
    buf: BytesMut,
    /// The largest message taken.
    max: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Frames::with_max(MAX_MESSAGE)
    }
}

impl Frames {
    fn with_max(max: usize) -> Frames {
        Frames {
            buf: BytesMut::new(),
            max,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if there is one.
    fn next(&mut self) -> Result<Option<Bytes>, CallError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(transport("a compressed gRPC message (none was asked for)"));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max {
            return Err(transport(format!(
                "a gRPC message of {len} bytes (at most {} taken)",
                self.max
            )));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// The one message of a unary answer, taken as its body arrives: a frame claiming more than
/// `MAX_MESSAGE` is refused at its header, and a second message is refused, so no more than
/// one message is ever held.
#[derive(Debug, Default)]
struct Unary {
    frames: Frames,
    message: Option<Bytes>,
}

impl Unary {
    fn push(&mut self, data: &[u8]) -> Result<(), CallError> {
        self.frames.push(data);
        while let Some(m) = self.frames.next()? {
            if self.message.replace(m).is_some() {
                return Err(transport("more than one message in a unary answer"));
            }
        }
        Ok(())
    }

    /// The message, once the body has ended.
    fn finish(self) -> Result<Bytes, CallError> {
        if !self.frames.buf.is_empty() {
            return Err(transport("a gRPC message cut short"));
        }
        self.message
            .ok_or_else(|| transport("no message in the answer"))
    }
}

/// A gRPC status in headers or trailers: `Some(Err)` when not OK.
fn status(h: &HeaderMap) -> Option<Result<(), CallError>> {
    let code: u32 = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let msg = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some(Err(CallError::Status(code, msg)))
}

/// One HTTP/2 connection to containerd; calls are multiplexed over it.
#[derive(Clone)]
struct Channel {
    sender: SendRequest<Full<Bytes>>,
    timeout: Duration,
}

impl Channel {
    async fn connect(socket: &std::path::Path, timeout: Duration) -> Result<Channel, BoxError> {
        let work = async {
            let stream = tokio::net::UnixStream::connect(socket).await?;
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, BoxError>(sender)
        };
        let sender = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("no HTTP/2 handshake within {timeout:?}"))??;
        Ok(Channel { sender, timeout })
    }

    async fn start<M: Message>(
        &mut self,
        path: &str,
        namespace: Option<&str>,
        req: &M,
    ) -> Result<Incoming, CallError> {
        let mut r = Request::post(format!("http://containerd{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(ns) = namespace {
            r = r.header("containerd-namespace", ns);
        }
        let r = r.body(Full::new(frame(req))).map_err(transport)?;
        self.sender.ready().await.map_err(transport)?;
        let resp = self.sender.send_request(r).await.map_err(transport)?;
        if resp.status() != StatusCode::OK {
            return Err(transport(format!("{path}: HTTP {}", resp.status())));
        }
        // A "trailers-only" answer carries the status in its headers.
        if let Some(Err(e)) = status(resp.headers()) {
            return Err(e);
        }
        Ok(resp.into_body())
    }

    /// A unary call.
    async fn call<M: Message, R: Message + Default>(
        &mut self,
        path: &str,
        namespace: Option<&str>,
        req: &M,
    ) -> Result<R, CallError> {
        let timeout = self.timeout;
        let work = async {
            let mut body = self.start(path, namespace, req).await?;
            let mut unary = Unary::default();
            while let Some(f) = body.frame().await {
                let f = f.map_err(transport)?;
                // The status comes in the trailers, after the message: it is the word that
                // counts.
                if let Some(Err(e)) = f.trailers_ref().and_then(status) {
                    return Err(e);
                }
                if let Some(data) = f.data_ref() {
                    unary
                        .push(data)
                        .map_err(|e| transport(format!("{path}: {e}")))?;
                }
            }
            let msg = unary
                .finish()
                .map_err(|e| transport(format!("{path}: {e}")))?;
            R::decode(msg).map_err(CallError::Decode)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(transport(format!("{path}: no answer within {timeout:?}"))),
        }
    }
}

/// What one `Get` answer does to the table.
#[derive(Debug)]
enum Got {
    Container(Container),
    /// containerd no longer has it.
    Gone,
    /// A status other than NOT_FOUND, or an answer that does not decode: that container stays
    /// unnamed (asked again after `ASK_AGAIN`), and the connection, with every other
    /// container's metadata, is kept.
    Unreadable(CallError),
}

/// Reads a `Get` answer; only a failed transport ends the session.
fn got(answer: Result<GetContainerResponse, CallError>) -> Result<Got, CallError> {
    match answer {
        Ok(GetContainerResponse { container: Some(c) }) => Ok(Got::Container(c)),
        Ok(_) | Err(CallError::Status(NOT_FOUND, _)) => Ok(Got::Gone),
        Err(e @ (CallError::Status(..) | CallError::Decode(_))) => Ok(Got::Unreadable(e)),
        Err(e) => Err(e),
    }
}

pub(super) struct Session {
    config: ContainerdConfig,
    timeout: Duration,
    want: mpsc::Receiver<Want>,
    asked: HashMap<(String, String), Instant>,
    /// The namespaces seen at the last list.
    namespaces: Vec<String>,
}

impl Session {
    pub fn new(config: ContainerdConfig, timeout: Duration, want: mpsc::Receiver<Want>) -> Session {
        Session {
            config,
            timeout,
            want,
            asked: HashMap::new(),
            namespaces: Vec::new(),
        }
    }

    fn followed(&self, namespace: &str) -> bool {
        self.config.namespaces.is_empty() || self.config.namespaces.iter().any(|n| n == namespace)
    }

    async fn relist(&mut self, ch: &mut Channel, shared: &Shared) -> Result<(), CallError> {
        let namespaces = if self.config.namespaces.is_empty() {
            let r: ListNamespacesResponse = ch
                .call(NAMESPACES_LIST, None, &ListNamespacesRequest::default())
                .await?;
            r.namespaces.into_iter().map(|n| n.name).collect()
        } else {
            self.config.namespaces.clone()
        };
        let mut fresh = Table::new();
        for ns in &namespaces {
            let r: ListContainersResponse = match ch
                .call(CONTAINERS_LIST, Some(ns), &ListContainersRequest::default())
                .await
            {
                Ok(r) => r,
                // A configured namespace that does not exist (yet).
                Err(CallError::Status(..)) => continue,
                Err(e) => return Err(e),
            };
            for c in r.containers {
                let meta = metadata(&c.id, &c.image, c.labels);
                fresh.entry(c.id).or_default().push(Record {
                    namespace: ns.clone(),
                    meta,
                });
            }
        }
        shared.replace(fresh);
        self.namespaces = namespaces;
        let now = Instant::now();
        self.asked.retain(|_, t| now.duration_since(*t) < ASK_AGAIN);
        Ok(())
    }

    /// Reads one container into the table (removes it when containerd no longer has it).
    async fn get(
        &mut self,
        ch: &mut Channel,
        shared: &Shared,
        namespace: &str,
        id: &str,
    ) -> Result<(), CallError> {
        let req = GetContainerRequest { id: id.to_string() };
        let answer = ch
            .call::<_, GetContainerResponse>(CONTAINERS_GET, Some(namespace), &req)
            .await;
        match got(answer)? {
            Got::Container(c) => {
                let meta = metadata(&c.id, &c.image, c.labels);
                shared.upsert(&c.id, namespace, meta);
                // A namespace is asked in for unknown ids once a container is found there;
                // not when an event merely names it (a stream naming a new one each time
                // would make every later lookup a Get in each, until the next re-list).
                if !self.namespaces.iter().any(|n| n == namespace) {
                    self.namespaces.push(namespace.to_string());
                }
            }
            Got::Gone => shared.remove(id, namespace),
            Got::Unreadable(e) => {
                tracing::debug!(runtime = "containerd", "Get {namespace}/{id}: {e}");
            }
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        ch: &mut Channel,
        shared: &Shared,
        c: Change,
    ) -> Result<(), CallError> {
        if !self.followed(&c.namespace) {
            return Ok(());
        }
        if c.deleted {
            shared.remove(&c.id, &c.namespace);
            return Ok(());
        }
        self.get(ch, shared, &c.namespace, &c.id).await
    }

    async fn on_want(
        &mut self,
        ch: &mut Channel,
        shared: &Shared,
        w: Want,
    ) -> Result<(), CallError> {
        if shared.knows(&w.id) {
            return Ok(());
        }
        let namespaces = match w.namespace {
            Some(ns) => vec![ns],
            None => self.namespaces.clone(),
        };
        let now = Instant::now();
        for ns in namespaces {
            if !self.followed(&ns) {
                continue;
            }
            let key = (ns, w.id.clone());
            if self
                .asked
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < ASK_AGAIN)
            {
                continue;
            }
            self.get(ch, shared, &key.0, &key.1).await?;
            self.asked.insert(key, now);
            if shared.knows(&w.id) {
                break;
            }
        }
        Ok(())
    }

    async fn follow(&mut self, shared: &Shared) -> Result<(), BoxError> {
        let mut ch = Channel::connect(&self.config.socket, self.timeout).await?;
        // Subscribe first, list second: what happens in between is heard, not lost.
        let (tx, mut events) = mpsc::channel::<Change>(1024);
        let mut sub = ch.clone();
        let _reader = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = read_events(&mut sub, tx).await {
                tracing::debug!(runtime = "containerd", "event stream ended: {e}");
            }
        }));
        self.relist(&mut ch, shared).await?;
        shared.mark_up();
        let mut relist = super::backstop(self.config.relist_interval);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => self.on_event(&mut ch, shared, e).await?,
                    None => return Err("the event stream ended".into()),
                },
                _ = relist.tick() => self.relist(&mut ch, shared).await?,
                Some(w) = self.want.recv() => self.on_want(&mut ch, shared, w).await?,
            }
        }
    }
}

impl super::Session for Session {
    async fn run(&mut self, shared: &Shared) -> BoxError {
        match self.follow(shared).await {
            Ok(()) => "stopped".into(),
            Err(e) => e,
        }
    }
}

/// Streams `Events/Subscribe` (container topics, every namespace) into `tx`.
async fn read_events(ch: &mut Channel, tx: mpsc::Sender<Change>) -> Result<(), CallError> {
    let req = SubscribeRequest {
        filters: ["create", "update", "delete"]
            .iter()
            .map(|t| format!("topic==\"/containers/{t}\""))
            .collect(),
    };
    let mut body = ch.start(EVENTS_SUBSCRIBE, None, &req).await?;
    let mut frames = Frames::with_max(MAX_EVENT);
    while let Some(f) = body.frame().await {
        let f = f.map_err(transport)?;
        if let Some(t) = f.trailers_ref() {
            if let Some(Err(e)) = status(t) {
                return Err(e);
            }
        }
        let Some(data) = f.data_ref() else { continue };
        frames.push(data);
        while let Some(msg) = frames.next()? {
            let e = Envelope::decode(msg).map_err(transport)?;
            let Some(c) = change(e) else { continue };
            if tx.send(c).await.is_err() {
                return Ok(());
            }
        }
    }
    Err(transport("containerd closed the event stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_chunks() {
        let env = Envelope {
            namespace: "test".into(),
            topic: "/containers/create".into(),
            event: Some(Any {
                type_url: "containerd.events.ContainerCreate".into(),
                value: ContainerEvent { id: "c1".into() }.encode_to_vec(),
            }),
        };
        let bytes = [frame(&env), frame(&env)].concat();
        let mut f = Frames::default();
        f.push(&bytes[..3]);
        assert!(f.next().unwrap().is_none());
        f.push(&bytes[3..bytes.len() - 1]);
        let m = f.next().unwrap().expect("first whole");
        assert_eq!(Envelope::decode(m).unwrap(), env);
        assert!(f.next().unwrap().is_none());
        f.push(&bytes[bytes.len() - 1..]);
        let m = f.next().unwrap().expect("second whole");
        let e = Envelope::decode(m).unwrap();
        let ev = ContainerEvent::decode(e.event.unwrap().value.as_slice()).unwrap();
        assert_eq!(ev.id, "c1");
        let mut f = Frames::default();
        f.push(&[1, 0, 0, 0, 0]);
        assert!(f.next().is_err(), "compressed refused");
    }

    #[test]
    fn a_unary_answer_holds_one_message_and_refuses_a_huge_one_at_its_header() {
        let msg = ListContainersResponse::default();
        let mut u = Unary::default();
        let bytes = frame(&msg);
        u.push(&bytes[..2]).unwrap();
        u.push(&bytes[2..]).unwrap();
        assert_eq!(u.finish().unwrap(), msg.encode_to_vec());
        // 100 MB said in the header: refused before a byte of it is held.
        let mut u = Unary::default();
        let mut head = vec![0u8];
        head.extend_from_slice(&100_000_000u32.to_be_bytes());
        assert!(u.push(&head).is_err());
        // A second message: refused, not gathered.
        let mut u = Unary::default();
        u.push(&bytes).unwrap();
        assert!(u.push(&bytes).is_err());
        // Cut short, or nothing at all.
        let mut u = Unary::default();
        u.push(
            &frame(&Namespace {
                name: "k8s.io".into(),
            })[..7],
        )
        .unwrap();
        assert!(u.finish().is_err());
        assert!(Unary::default().finish().is_err());
    }

    #[test]
    fn container_decodes_skipping_fields_not_declared() {
        // id, labels, image, then a runtime (4), a spec (5) and a snapshotter (6).
        let mut raw = Container {
            id: "c1".into(),
            labels: [("app".to_string(), "c".to_string())].into(),
            image: "docker.io/library/bb:1".into(),
        }
        .encode_to_vec();
        raw.extend_from_slice(&[0x22, 0x03, 0x0a, 0x01, b'x']); // field 4, a message
        raw.extend_from_slice(&[0x32, 0x09]); // field 6, "overlayfs"
        raw.extend_from_slice(b"overlayfs");
        let c = Container::decode(raw.as_slice()).unwrap();
        assert_eq!(c.id, "c1");
        assert_eq!(c.image, "docker.io/library/bb:1");
        assert_eq!(c.labels.get("app").map(String::as_str), Some("c"));
    }

    #[test]
    fn a_get_answer_that_does_not_decode_leaves_the_connection_up() {
        // A key of 2^32 - 1: wire type 7, which does not exist.
        let garbage: &[u8] = b"\xff\xff\xff\xff\x0f garbled";
        let answer = GetContainerResponse::decode(garbage).map_err(CallError::Decode);
        assert!(matches!(
            got(answer),
            Ok(Got::Unreadable(CallError::Decode(_)))
        ));
        let unavailable = Err(CallError::Status(14, "busy".into()));
        assert!(matches!(got(unavailable), Ok(Got::Unreadable(_))));
        let not_found = Err(CallError::Status(NOT_FOUND, "no such".into()));
        assert!(matches!(got(not_found), Ok(Got::Gone)));
        assert!(matches!(
            got(Ok(GetContainerResponse { container: None })),
            Ok(Got::Gone)
        ));
        let c = Container {
            id: "c1".into(),
            ..Container::default()
        };
        let found = Ok(GetContainerResponse { container: Some(c) });
        assert!(matches!(got(found), Ok(Got::Container(c)) if c.id == "c1"));
        // Only the transport failing ends the session.
        assert!(got(Err(transport("connection reset"))).is_err());
    }

    #[test]
    fn events_are_taken_only_as_containerd_could_send_them() {
        let envelope = |namespace: &str, topic: &str, id: &str| Envelope {
            namespace: namespace.into(),
            topic: topic.into(),
            event: Some(Any {
                type_url: "containerd.events.ContainerUpdate".into(),
                value: ContainerEvent { id: id.into() }.encode_to_vec(),
            }),
        };
        assert_eq!(
            change(envelope("k8s.io", "/containers/update", "c1")),
            Some(Change {
                namespace: "k8s.io".into(),
                id: "c1".into(),
                deleted: false
            })
        );
        assert!(change(envelope("default", "/containers/delete", "c1")).is_some_and(|c| c.deleted));
        assert_eq!(change(envelope("k8s.io", "/tasks/exit", "c1")), None);
        // A namespace of 16 KiB, or one containerd refuses to make; an id that is no id.
        assert_eq!(
            change(envelope(&"n".repeat(16 << 10), "/containers/update", "c1")),
            None
        );
        for ns in ["", "a..b", "-a", "a-", "a b", "ns/x", &"n".repeat(77)] {
            assert!(!valid_namespace(ns), "{ns:?}");
        }
        for ns in ["k8s.io", "moby", "default", "a-b_c.d", &"n".repeat(76)] {
            assert!(valid_namespace(ns), "{ns:?}");
        }
        assert_eq!(
            change(envelope("k8s.io", "/containers/create", "../x")),
            None
        );
        assert_eq!(change(envelope("k8s.io", "/containers/create", "")), None);
        // An event frame over 1 MiB is refused at its header.
        let mut f = Frames::with_max(MAX_EVENT);
        let mut head = vec![0u8];
        head.extend_from_slice(&(64u32 << 20).to_be_bytes());
        f.push(&head);
        assert!(f.next().is_err());
    }

    #[test]
    fn grpc_status_from_headers() {
        let mut h = HeaderMap::new();
        assert!(status(&h).is_none());
        h.insert("grpc-status", "0".parse().unwrap());
        assert!(matches!(status(&h), Some(Ok(()))));
        h.insert("grpc-status", "5".parse().unwrap());
        h.insert("grpc-message", "not found".parse().unwrap());
        assert!(matches!(status(&h), Some(Err(CallError::Status(5, m))) if m == "not found"));
    }
}
