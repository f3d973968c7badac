//! Remote-Write 1.0's messages (`prometheus.WriteRequest` and what it holds, from
//! prometheus/prompb), and the few wire pieces the encoder writes itself.
//!
//! The encoder streams bytes instead of building these structs: a struct per label would
//! allocate two `String`s for every label of every sample. The messages are here for the
//! readers (tests, the fake receivers) and to hold the streamed bytes equal to what prost
//! writes for the same request (a test below).
//!
//! A queue item is one sample of one series: a `TimeSeries` message body with the sample
//! field first, then the label fields. Protobuf fields may come in any order, so an item is
//! a valid `TimeSeries` by itself, and the sender can still take the labels apart from the
//! sample to gather a series' samples into one `TimeSeries`.

/// The request body, before snappy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: its labels and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name; `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// One label of a series.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// The label's name (`__name__` for the metric name).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label's value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One value of a series at one time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value; [`STALE_NAN`]'s bits mark the end of a series.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The value Prometheus writes to say a series ended (a NaN no computation produces).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

// Field keys: (field number << 3) | wire type (0 varint, 1 fixed 64-bit, 2 length-delimited).
const KEY_TIMESERIES: u8 = 1 << 3 | 2;
const KEY_LABELS: u8 = 1 << 3 | 2;
const KEY_SAMPLES: u8 = 2 << 3 | 2;
const KEY_NAME: u8 = 1 << 3 | 2;
const KEY_VALUE_STR: u8 = 2 << 3 | 2;
const KEY_VALUE_F64: u8 = 1 << 3 | 1;
const KEY_TIMESTAMP: u8 = 2 << 3;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Appends a `Label` field of a `TimeSeries` (an empty value, which Prometheus reads as no
/// label, is the caller's to leave out).
pub(crate) fn put_label(out: &mut Vec<u8>, name: &str, value: &str) {
    let field = |s: &str| 1 + varint_len(s.len() as u64) + s.len();
    out.push(KEY_LABELS);
    put_varint(out, (field(name) + field(value)) as u64);
    for (key, s) in [(KEY_NAME, name), (KEY_VALUE_STR, value)] {
        out.push(key);
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

/// Appends a `Sample` field of a `TimeSeries`. A zero value is left out, as proto3 (and
/// prost) write it; readers take the missing field for 0.
pub(crate) fn put_sample(out: &mut Vec<u8>, value: f64, timestamp_ms: i64) {
    let zero = value.to_bits() == 0;
    let len = if zero { 0 } else { 9 } + 1 + varint_len(timestamp_ms as u64);
    out.push(KEY_SAMPLES);
    out.push(len as u8); // at most 20: one byte
    if !zero {
        out.push(KEY_VALUE_F64);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    out.push(KEY_TIMESTAMP);
    put_varint(out, timestamp_ms as u64);
}

/// An item taken apart: its sample field (key and length included), its label fields, and
/// the sample's timestamp. `None` when the item is not one the encoder wrote.
pub(crate) fn split_item(item: &[u8]) -> Option<(&[u8], &[u8], i64)> {
    if item.first() != Some(&KEY_SAMPLES) {
        return None;
    }
    let len = usize::from(*item.get(1)?);
    let sample = item.get(..2 + len)?;
    let labels = &item[2 + len..];
    if labels.first() != Some(&KEY_LABELS) {
        return None;
    }
    let mut body = &sample[2..];
    if body.first() == Some(&KEY_VALUE_F64) {
        body = body.get(9..)?;
    }
    if body.first() != Some(&KEY_TIMESTAMP) {
        return None;
    }
    let (ts, n) = get_varint(&body[1..])?;
    if n + 1 != body.len() {
        return None;
    }
    Some((sample, labels, ts as i64))
}

/// Appends one `TimeSeries` field of a `WriteRequest`: these labels and samples.
pub(crate) fn put_series<'a>(
    out: &mut Vec<u8>,
    labels: &[u8],
    samples: impl Iterator<Item = &'a [u8]> + Clone,
) {
    let len = labels.len() + samples.clone().map(<[u8]>::len).sum::<usize>();
    out.push(KEY_TIMESERIES);
    put_varint(out, len as u64);
    out.extend_from_slice(labels);
    for s in samples {
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn streamed_bytes_are_what_prost_writes() {
        let long = "x".repeat(200);
        let want = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("id", &long)],
                    samples: vec![
                        Sample {
                            value: 1.5,
                            timestamp: 1_700_000_000_123,
                        },
                        Sample {
                            value: 0.0,
                            timestamp: 1_700_000_001_123,
                        },
                        Sample {
                            value: f64::from_bits(STALE_NAN),
                            timestamp: 1,
                        },
                    ],
                },
                TimeSeries {
                    labels: vec![label("__name__", "b")],
                    samples: vec![Sample {
                        value: -3.0,
                        timestamp: 5,
                    }],
                },
            ],
        };
        let mut out = Vec::new();
        for ts in &want.timeseries {
            let mut labels = Vec::new();
            for l in &ts.labels {
                put_label(&mut labels, &l.name, &l.value);
            }
            let samples: Vec<Vec<u8>> = ts
                .samples
                .iter()
                .map(|s| {
                    let mut b = Vec::new();
                    put_sample(&mut b, s.value, s.timestamp);
                    b
                })
                .collect();
            put_series(&mut out, &labels, samples.iter().map(Vec::as_slice));
        }
        assert_eq!(out, want.encode_to_vec());
        let back = WriteRequest::decode(&out[..]).unwrap();
        assert_eq!(
            back.timeseries[0].samples[2].value.to_bits(),
            STALE_NAN,
            "the staleness marker's bits survive"
        );
    }

    #[test]
    fn items_split_into_sample_and_labels() {
        let mut item = Vec::new();
        put_sample(&mut item, 42.0, 1_700_000_000_000);
        let sample_len = item.len();
        put_label(&mut item, "__name__", "x");
        let (s, l, ts) = split_item(&item).unwrap();
        assert_eq!(s.len(), sample_len);
        assert_eq!(l, &item[sample_len..]);
        assert_eq!(ts, 1_700_000_000_000);
        // An item is a TimeSeries by itself.
        let one = TimeSeries::decode(&item[..]).unwrap();
        assert_eq!(one.samples[0].value, 42.0);
        assert_eq!(one.labels, vec![label("__name__", "x")]);
        let mut zero = Vec::new();
        put_sample(&mut zero, 0.0, 7);
        put_label(&mut zero, "a", "b");
        assert_eq!(split_item(&zero).unwrap().2, 7);
        for bad in [
            &b""[..],
            b"\x12",
            b"\x12\x02\x10\x07",
            b"\x0a\x00",
            b"\x12\x05\x10\x07",
        ] {
            assert!(split_item(bad).is_none(), "{bad:?}");
        }
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b), Some((v, b.len())));
        }
    }
}
