//! Accepting connections: plain HTTP or TLS, each connection served by hyper (HTTP/1.1),
//! every request first past the web config's rate limit and basic auth, until SIGTERM or
//! SIGINT.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::connections::{Marker, Ticket, Tracked};
use crate::server;
use crate::webconfig::WebConfig;

/// Bytes hyper queues for one connection's socket.
const WRITE_QUEUE: usize = 128 * 1024;

/// How long a client has to send its request headers, or to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Resp = Response<server::Body>;

/// Binds `addr` and serves `app` there until SIGTERM or SIGINT, at most `app.connections`'
/// limit of connections at once. With a web config, over TLS and/or behind basic auth as it
/// says.
pub async fn serve(
    app: Arc<server::App>,
    addr: SocketAddr,
    web: Option<Arc<WebConfig>>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let tls = web
        .as_ref()
        .and_then(|w| w.tls.clone())
        .map(TlsAcceptor::from);
    if let Some(w) = &web {
        tracing::info!("web config: {}", w.summary());
    }
    if tls.is_some() {
        tracing::info!("listening on https://{local}");
    } else {
        tracing::info!("listening on http://{local}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Dropped at once when every connection is busy: closed, and counted.
                let Some(ticket) = app.connections.admit() else {
                    continue;
                };
                tokio::spawn(connection(app.clone(), web.clone(), tls.clone(), stream, peer, ticket));
            }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
        }
    }
}

/// Serves one connection until it ends, or until it must make room for another.
async fn connection(
    app: Arc<server::App>,
    web: Option<Arc<WebConfig>>,
    tls: Option<TlsAcceptor>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
) {
    tokio::select! {
        () = serve_one(app, web, tls, stream, peer, &ticket) => {}
        () = ticket.evicted() => tracing::debug!("closed idle connection from {peer} to make room"),
    }
}

async fn serve_one(
    app: Arc<server::App>,
    web: Option<Arc<WebConfig>>,
    tls: Option<TlsAcceptor>,
    mut stream: TcpStream,
    peer: SocketAddr,
    ticket: &Ticket,
) {
    let Some(acceptor) = tls else {
        return http(app, web, ticket.guard(stream), ticket.marker()).await;
    };
    let handshake = async move {
        if plain_http(&mut stream).await? {
            return Ok(None);
        }
        acceptor.accept(stream).await.map(Some)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(Some(tls_stream))) => http(app, web, ticket.guard(tls_stream), ticket.marker()).await,
        Ok(Ok(None)) => {}
        // A refused client certificate is worth seeing when setting up mutual TLS; a probe
        // that connects and leaves is not.
        Ok(Err(e)) if about_certificates(&e) => tracing::info!("TLS handshake from {peer}: {e}"),
        Ok(Err(e)) => tracing::debug!("TLS handshake from {peer}: {e}"),
        Err(_) => tracing::debug!("TLS handshake from {peer} timed out"),
    }
}

fn about_certificates(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

/// True (after answering 400) when a client speaks plain HTTP to the TLS port: a TLS
/// connection starts with a handshake record (0x16), an HTTP request with a method name.
async fn plain_http(stream: &mut TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 || !first[0].is_ascii_uppercase() {
        return Ok(false);
    }
    const BODY: &str = "Client sent an HTTP request to an HTTPS server.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Read what the client sent before closing, so that the close is not a reset that could
    // beat the answer to the client.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(true)
}

async fn http<S>(app: Arc<server::App>, web: Option<Arc<WebConfig>>, stream: S, marker: Marker)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        // Busy from the request until its answer has been sent: not to be closed for room.
        let busy = marker.busy();
        let answer = respond(app.clone(), web.clone(), req);
        async move { answer.await.map(|r| r.map(|b| Tracked::new(b, busy))) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        // What hyper queues for a connection's socket (400 KB by default): a piece or two
        // of /metrics, so two hundred slow readers do not hold 80 MB of queued answers.
        .max_buf_size(WRITE_QUEUE)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

/// The rate limit, then basic auth (neither for `/healthz` when it is open to probes), then the
/// endpoint; the configured headers on every answer.
async fn respond(
    app: Arc<server::App>,
    web: Option<Arc<WebConfig>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Infallible> {
    let Some(web) = web else {
        return server::handle(app, req).await;
    };
    // Probes that cannot log in cannot be starved by others' requests either: `/healthz`,
    // when open, is neither limited nor guarded.
    let open_probe = app.healthz_without_auth && req.uri().path() == "/healthz";
    let limited = !open_probe && web.rate_limit.as_ref().is_some_and(|r| !r.allow());
    let mut resp = if limited {
        refusal(StatusCode::TOO_MANY_REQUESTS)
    } else if let Some(auth) = web.auth.as_ref().filter(|_| !open_probe) {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if auth.check(given).await {
            server::handle(app, req).await?
        } else {
            let mut r = refusal(StatusCode::UNAUTHORIZED);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"collector-exporter\""),
            );
            r
        }
    } else {
        server::handle(app, req).await?
    };
    for (name, value) in &web.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(resp)
}

fn refusal(status: StatusCode) -> Resp {
    let body = format!("{}\n", status.canonical_reason().unwrap_or("refused"));
    let mut r = Response::new(server::Body::whole(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
