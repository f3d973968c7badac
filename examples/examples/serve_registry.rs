//! Serves the containers' series from your own `prometheus-client` registry, beside your own
//! metrics, over hyper, until Ctrl-C.
//! `cargo run -p examples --example serve_registry -- 127.0.0.1:9500`
//!
//! The collector sweeps on its own thread (`Collector::spawn`); a scrape only encodes the
//! latest snapshot, so it never reads a cgroup file on the runtime.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use collector_core::prometheus::{Options, SnapshotCollector};
use collector_core::{Collector, Config, Snapshot};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// The containers' families, encoded from whatever snapshot is latest at each scrape.
#[derive(Debug)]
struct Containers {
    latest: watch::Receiver<Option<Arc<Snapshot>>>,
    options: Arc<Options>,
}

impl PromCollector for Containers {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let latest = self.latest.borrow().clone();
        match latest {
            Some(snapshot) => SnapshotCollector::new(snapshot, self.options.clone()).encode(enc),
            // Before the first sweep: no container series yet.
            None => Ok(()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9500".into());
    let driver = Collector::new(Config::default())?.spawn(Duration::from_secs(5))?;

    // Your registry, with your own metrics in it.
    let mut registry = Registry::default();
    let scrapes = Counter::<u64>::default();
    registry.register("myapp_scrapes", "Scrapes of this endpoint", scrapes.clone());
    registry.register_collector(Box::new(Containers {
        latest: driver.watch(),
        options: Arc::new(Options::default()),
    }));
    let registry = Arc::new(registry);

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (registry, scrapes) = (registry.clone(), scrapes.clone());
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (registry, scrapes) = (registry.clone(), scrapes.clone());
            async move { Ok::<_, Infallible>(answer(&req, &registry, &scrapes)) }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                eprintln!("connection: {e}");
            }
        });
    }
    driver.stop();
    Ok(())
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    registry: &Registry,
    scrapes: &Counter<u64>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    scrapes.inc();
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        let mut r = Response::new(Full::new(Bytes::from(format!("encoding: {e}\n"))));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}
