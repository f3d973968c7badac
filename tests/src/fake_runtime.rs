//! Fake container runtimes for the lying-runtime tests: a server on a unix socket in a temp
//! dir that the test can kill and start again (its listener and every connection dropped, the
//! socket file made anew), speaking HTTP/1.1 (Docker's Engine API) or HTTP/2 (containerd's
//! gRPC), answering with a handler the test writes; containerd's few messages and gRPC's
//! framing; and honest Docker and containerd handlers for a list of containers, which a lie
//! wraps.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A response body written by a task through [`Sender`], or whole.
pub struct Body {
    rx: tokio::sync::mpsc::Receiver<Frame<Bytes>>,
}

/// Writes frames of a [`Body`]; `send` fails once the client has gone.
pub type Sender = tokio::sync::mpsc::Sender<Frame<Bytes>>;

impl Body {
    /// A body and its writer, which holds at most `frames` frames ahead of the client.
    pub fn channel(frames: usize) -> (Sender, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel(frames);
        (tx, Body { rx })
    }

    /// A body of these frames, then its end.
    pub fn frames(frames: Vec<Frame<Bytes>>) -> Body {
        let (tx, body) = Body::channel(frames.len().max(1));
        for f in frames {
            let _ = tx.try_send(f);
        }
        body
    }

    pub fn full(data: impl Into<Bytes>) -> Body {
        Body::frames(vec![Frame::data(data.into())])
    }

    pub fn empty() -> Body {
        Body::frames(Vec::new())
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// One request as the handler sees it: path, headers and the whole (small) body.
pub struct Call {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    /// The `containerd-namespace` header.
    pub fn namespace(&self) -> &str {
        self.headers
            .get("containerd-namespace")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The request's gRPC message (after the 5-byte header), decoded.
    pub fn message<M: prost::Message + Default>(&self) -> M {
        M::decode(self.body.get(5..).unwrap_or_default()).expect("a well-formed request")
    }
}

/// Answers one request; runs inside the server's tokio runtime (a lie may `tokio::spawn` a
/// writer for its body).
pub type Handler = Arc<dyn Fn(Call) -> Response<Body> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, as the Docker Engine API.
    Http1,
    /// HTTP/2 with prior knowledge, as containerd's gRPC.
    Http2,
}

/// A fake runtime on a unix socket: started by [`FakeServer::start`], killed and started again
/// by [`FakeServer::kill`] and [`FakeServer::restart`]; killed when dropped.
pub struct FakeServer {
    pub path: PathBuf,
    protocol: Protocol,
    handler: Handler,
    rt: tokio::runtime::Runtime,
    /// The accept loop of the incarnation running now; it owns every connection's task.
    running: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    /// Serves `handler` on `<temp dir>/<file>`.
    pub fn start(file: &str, protocol: Protocol, handler: Handler) -> FakeServer {
        let dir = tempfile::tempdir().expect("a temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the fake");
        let mut s = FakeServer {
            path: dir.path().join(file),
            protocol,
            handler,
            rt,
            running: None,
            _dir: dir,
        };
        s.restart();
        s
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("a utf-8 temp path")
    }

    /// Drops the listener and every connection, and removes the socket file: the runtime is
    /// down. Returns once they are closed.
    pub fn kill(&mut self) {
        if let Some(h) = self.running.take() {
            h.abort();
            // Aborted, the task is dropped with its listener and connection set.
            let _ = self.rt.block_on(h);
        }
        let _ = std::fs::remove_file(&self.path);
    }

    /// Kills the running incarnation, if any, and starts a new one on a new socket file.
    pub fn restart(&mut self) {
        self.kill();
        let listener = {
            let _guard = self.rt.enter();
            tokio::net::UnixListener::bind(&self.path).expect("bind the fake socket")
        };
        let (protocol, handler) = (self.protocol, self.handler.clone());
        self.running = Some(self.rt.spawn(accept(listener, protocol, handler)));
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn accept(listener: tokio::net::UnixListener, protocol: Protocol, handler: Handler) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            a = listener.accept() => {
                let Ok((stream, _)) = a else { continue };
                conns.spawn(serve(stream, protocol, handler.clone()));
            }
            Some(_) = conns.join_next() => {}
        }
    }
}

async fn serve(stream: tokio::net::UnixStream, protocol: Protocol, handler: Handler) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_string(), |p| p.to_string());
            let headers = req.headers().clone();
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok::<_, Infallible>(handler(Call {
                path,
                headers,
                body,
            }))
        }
    });
    let io = TokioIo::new(stream);
    let _ = match protocol {
        Protocol::Http1 => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
        Protocol::Http2 => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
}

/// A Docker Engine API container, for [`docker_honest`].
#[derive(Debug, Clone)]
pub struct DockerContainer {
    pub id: String,
    pub name: String,
    pub image: String,
}

/// An honest Docker: `/containers/json` lists `containers()`, `/containers/<id>/json` inspects
/// one (404 for the others), `/events` stays open and says nothing.
pub fn docker_honest(
    containers: impl Fn() -> Vec<DockerContainer> + Send + Sync + 'static,
) -> Handler {
    Arc::new(move |call: Call| {
        let json = |v: serde_json::Value| {
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::full(v.to_string()))
                .expect("a response")
        };
        if call.path.starts_with("/containers/json") {
            let list: Vec<_> = containers()
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
                        "Labels": {}, "State": "running"
                    })
                })
                .collect();
            return json(serde_json::Value::Array(list));
        }
        if call.path.starts_with("/events") {
            let (tx, body) = Body::channel(1);
            // Open until the client goes (or the server is killed).
            tokio::spawn(async move { tx.closed().await });
            return Response::builder()
                .header("content-type", "application/json")
                .body(body)
                .expect("a response");
        }
        let id = call
            .path
            .strip_prefix("/containers/")
            .and_then(|p| p.strip_suffix("/json"))
            .unwrap_or("");
        match containers().into_iter().find(|c| c.id == id) {
            Some(c) => json(serde_json::json!({
                "Id": c.id, "Name": format!("/{}", c.name), "Image": "sha256:0",
                "Config": {"Image": c.image, "Labels": {}}
            })),
            None => Response::builder()
                .status(404)
                .body(Body::full("{\"message\":\"No such container\"}"))
                .expect("a response"),
        }
    })
}

/// containerd's messages, as `collector-core/src/runtime/containerd.rs` declares them (and
/// containerd's `api/services/*/v1/*.proto`).
pub mod containerd {
    use std::collections::BTreeMap;

    pub const NAMESPACES_LIST: &str = "/containerd.services.namespaces.v1.Namespaces/List";
    pub const CONTAINERS_LIST: &str = "/containerd.services.containers.v1.Containers/List";
    pub const CONTAINERS_GET: &str = "/containerd.services.containers.v1.Containers/Get";
    pub const EVENTS_SUBSCRIBE: &str = "/containerd.services.events.v1.Events/Subscribe";

    /// gRPC's NOT_FOUND.
    pub const NOT_FOUND: u32 = 5;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(btree_map = "string, string", tag = "2")]
        pub labels: BTreeMap<String, String>,
        #[prost(string, tag = "3")]
        pub image: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersResponse {
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetContainerRequest {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetContainerResponse {
        #[prost(message, optional, tag = "1")]
        pub container: Option<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesResponse {
        #[prost(message, repeated, tag = "1")]
        pub namespaces: Vec<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Envelope {
        #[prost(string, tag = "2")]
        pub namespace: String,
        #[prost(string, tag = "3")]
        pub topic: String,
        #[prost(message, optional, tag = "4")]
        pub event: Option<Any>,
    }

    /// `ContainerCreate`, `ContainerUpdate` and `ContainerDelete` all start with the id.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerEvent {
        #[prost(string, tag = "1")]
        pub id: String,
    }
}

/// A gRPC frame: 1 byte "compressed" (0), 4 bytes big-endian length, the message.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(5 + message.len());
    b.push(0);
    b.extend_from_slice(&(message.len() as u32).to_be_bytes());
    b.extend_from_slice(message);
    b.into()
}

/// A message in a gRPC frame.
pub fn grpc_message<M: prost::Message>(m: &M) -> Bytes {
    grpc_frame(&m.encode_to_vec())
}

/// Trailers carrying a gRPC status.
pub fn grpc_trailers(code: u32, message: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", code.into());
    if !message.is_empty() {
        t.insert(
            "grpc-message",
            message.parse().expect("a header-safe message"),
        );
    }
    t
}

/// A gRPC answer's head (200, `application/grpc`) with this body.
pub fn grpc_response(body: Body) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .expect("a response")
}

/// A unary answer: these frames (raw bytes, lies included), then `grpc-status: 0`.
pub fn grpc_ok(frames: Vec<Bytes>) -> Response<Body> {
    let mut all: Vec<Frame<Bytes>> = frames.into_iter().map(Frame::data).collect();
    all.push(Frame::trailers(grpc_trailers(0, "")));
    grpc_response(Body::frames(all))
}

/// A "trailers-only" answer: the status in the head, no body.
pub fn grpc_status(code: u32, message: &str) -> Response<Body> {
    let mut r = grpc_response(Body::empty());
    r.headers_mut().extend(grpc_trailers(code, message));
    r
}

/// A containerd container, for [`containerd_honest`]: listed in `namespace`.
#[derive(Debug, Clone)]
pub struct ContainerdContainer {
    pub namespace: String,
    pub id: String,
    pub image: String,
}

impl ContainerdContainer {
    fn message(&self) -> containerd::Container {
        containerd::Container {
            id: self.id.clone(),
            labels: BTreeMap::new(),
            image: self.image.clone(),
        }
    }
}

/// An honest containerd: lists the namespaces of `containers()` and each one's containers,
/// gets one (NOT_FOUND for the others), and keeps each event stream open, saying nothing.
pub fn containerd_honest(
    containers: impl Fn() -> Vec<ContainerdContainer> + Send + Sync + 'static,
) -> Handler {
    use containerd::*;
    Arc::new(move |call: Call| match call.path.as_str() {
        NAMESPACES_LIST => {
            let mut names: Vec<String> = containers().into_iter().map(|c| c.namespace).collect();
            names.sort();
            names.dedup();
            let r = ListNamespacesResponse {
                namespaces: names.into_iter().map(|name| Namespace { name }).collect(),
            };
            grpc_ok(vec![grpc_message(&r)])
        }
        CONTAINERS_LIST => {
            let ns = call.namespace().to_string();
            let r = ListContainersResponse {
                containers: containers()
                    .iter()
                    .filter(|c| c.namespace == ns)
                    .map(ContainerdContainer::message)
                    .collect(),
            };
            grpc_ok(vec![grpc_message(&r)])
        }
        CONTAINERS_GET => {
            let id = call.message::<GetContainerRequest>().id;
            let ns = call.namespace().to_string();
            match containers()
                .into_iter()
                .find(|c| c.id == id && c.namespace == ns)
            {
                Some(c) => grpc_ok(vec![grpc_message(&GetContainerResponse {
                    container: Some(c.message()),
                })]),
                None => grpc_status(NOT_FOUND, "container not found"),
            }
        }
        EVENTS_SUBSCRIBE => {
            let (tx, body) = Body::channel(1);
            tokio::spawn(async move { tx.closed().await });
            grpc_response(body)
        }
        _ => grpc_status(12, "unimplemented"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    async fn read_all(mut body: Body) -> Vec<Frame<Bytes>> {
        let mut out = Vec::new();
        while let Some(Ok(f)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            out.push(f);
        }
        out
    }

    #[test]
    fn a_unary_answer_is_its_frames_then_status_zero() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let frames = rt.block_on(read_all(grpc_ok(vec![grpc_frame(b"ab")]).into_body()));
        assert_eq!(
            frames[0].data_ref().map(|d| d.to_vec()),
            Some(vec![0, 0, 0, 0, 2, b'a', b'b'])
        );
        assert_eq!(
            frames[1].trailers_ref().and_then(|t| t.get("grpc-status")),
            Some(&"0".parse().expect("a header value"))
        );
    }
}
