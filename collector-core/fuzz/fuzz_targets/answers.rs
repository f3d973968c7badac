//! What servers answer, read as the clients read it: the Docker Engine API's container list,
//! inspect and event stream, CRI-O's inspect, containerd's gRPC frames, Elasticsearch's
//! `_bulk` and error answers, and `Retry-After`.
//!
//! The first byte picks the answer, the second the size of the chunks it arrives in; the rest
//! is the body. Streams must read the same however they are cut.
#![no_main]

use collector_core::fuzzing::{
    elastic_bulk_response, parse_retry_after, request_error, runtime_answer,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [kind, chunk, body @ ..] = data else {
        return;
    };
    let size = usize::from(*chunk).max(1);
    let chunks: Vec<&[u8]> = body.chunks(size).collect();
    match kind % 8 {
        k @ 0..=4 => {
            let n = runtime_answer(k, &chunks);
            // The event stream and gRPC frames are streams: the cut must not matter.
            if k == 2 || k == 4 {
                assert_eq!(
                    n,
                    runtime_answer(k, &[body]),
                    "chunks of {size} read differently"
                );
            }
            assert!(n <= body.len(), "{n} items from {} bytes", body.len());
        }
        5 => {
            let n = usize::from(*chunk);
            if let Ok(v) = elastic_bulk_response(body, n) {
                assert_eq!(
                    v.ok + v.retry.len() + v.rejected.len(),
                    n,
                    "items accounted for"
                );
                let mut seen: Vec<usize> = v.retry.clone();
                seen.extend(v.rejected.iter().map(|e| e.pos));
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(
                    seen.len(),
                    v.retry.len() + v.rejected.len(),
                    "an item twice"
                );
                assert!(seen.iter().all(|&p| p < n));
                for e in &v.rejected {
                    assert!(!e.reason.contains('\n'), "a reason over two lines");
                    assert!(e.reason.chars().count() <= 600, "a reason too long");
                }
            }
        }
        6 => {
            let e = request_error(body);
            assert!(!e.contains('\n'), "an error over two lines: {e:?}");
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = parse_retry_after(text);
            }
        }
    }
});
