//! Response bodies: whole (the small answers), or pieces from a producer (`/metrics`), so a
//! body of any size goes out through buffers of a fixed size.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// What a producer sends: a piece, or the end. A producer that goes away without saying
/// `End` failed part way, and the body ends in an error rather than looking complete.
pub enum Piece {
    Data(Bytes),
    End,
}

pub enum Body {
    Whole(Option<Bytes>),
    Pieces {
        rx: mpsc::Receiver<Piece>,
        done: bool,
    },
}

impl Body {
    pub fn whole(b: impl Into<Bytes>) -> Self {
        Body::Whole(Some(b.into()))
    }

    /// A body fed through a channel of `depth` pieces; the sender is the producer's.
    pub fn pieces(depth: usize) -> (mpsc::Sender<Piece>, Self) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, Body::Pieces { rx, done: false })
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Pieces { done: true, .. } => Poll::Ready(None),
            Body::Pieces { rx, done } => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Piece::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Piece::End)) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(None) => {
                    *done = true;
                    Poll::Ready(Some(Err(std::io::Error::other(
                        "the body's producer stopped before the end",
                    ))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Whole(None) | Body::Pieces { done: true, .. })
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Whole(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Whole(None) => SizeHint::with_exact(0),
            Body::Pieces { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn pieces_arrive_in_order_and_a_producer_that_quits_is_an_error() {
        let (tx, body) = Body::pieces(2);
        let producer = std::thread::spawn(move || {
            for p in ["a", "b", "c"] {
                tx.blocking_send(Piece::Data(Bytes::from(p)))
                    .expect("reader");
            }
            tx.blocking_send(Piece::End).expect("reader");
        });
        let all = body.collect().await.expect("a whole body").to_bytes();
        producer.join().expect("producer");
        assert_eq!(&all[..], b"abc");

        let (tx, body) = Body::pieces(2);
        std::thread::spawn(move || {
            let _ = tx.blocking_send(Piece::Data(Bytes::from("partial")));
        });
        assert!(body.collect().await.is_err(), "a cut body looked complete");
    }
}
