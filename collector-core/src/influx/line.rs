//! The InfluxDB line protocol, written by hand: one point per call, no allocation but the
//! output buffer.
//!
//! `measurement,tag=v,tag=v field=1i,field=2.5,field="s" 1700000000000000000`
//! Escaping per element: measurement escapes `,` and space; tag keys, tag values and field
//! keys escape `,`, `=` and space; string field values escape `"` and `\`. Backslashes in
//! names and tags cannot be written unambiguously (1.x takes them literally, later parsers as
//! escapes, and none accepts one at the end), so they become `/`; line breaks, which cannot be
//! escaped there at all, become spaces. Tags are sorted by key and empty tag values left out
//! (InfluxDB refuses them).

use std::io::Write;

/// A field value of a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// A float; NaN and infinities are left out.
    F64(f64),
    /// A signed integer, written with `i`.
    I64(i64),
    /// Written with `u` when the server takes unsigned integers, else as a clamped `i`.
    U64(u64),
    /// Written as `true` or `false`.
    Bool(bool),
    /// A string, quoted and escaped.
    Str(&'a str),
}

/// Writes one point and its newline. Fields that cannot be written (NaN, infinities) are
/// left out; a point left with no field is not written at all. Returns whether it was.
pub fn write_point(
    out: &mut Vec<u8>,
    measurement: &str,
    tags: &mut [(&str, &str)],
    fields: &[(&str, Field)],
    timestamp_ns: i64,
    unsigned: bool,
) -> bool {
    let writable = |f: &Field| !matches!(f, Field::F64(v) if !v.is_finite());
    if measurement.is_empty() || !fields.iter().any(|(k, f)| !k.is_empty() && writable(f)) {
        return false;
    }
    escape(out, measurement, b",  ");
    tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, v) in tags.iter() {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        out.push(b',');
        escape(out, k, b",= ");
        out.push(b'=');
        escape(out, v, b",= ");
    }
    out.push(b' ');
    let mut first = true;
    for (k, f) in fields {
        if k.is_empty() || !writable(f) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        escape(out, k, b",= ");
        out.push(b'=');
        match *f {
            Field::F64(v) => {
                let _ = write!(out, "{v:?}");
            }
            Field::I64(v) => {
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                out.push(b'i');
            }
            Field::U64(v) if unsigned => {
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                out.push(b'u');
            }
            Field::U64(v) => {
                let v = v.min(i64::MAX as u64);
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                out.push(b'i');
            }
            Field::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
            Field::Str(s) => {
                out.push(b'"');
                for c in s.bytes() {
                    if c == b'"' || c == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
                out.push(b'"');
            }
        }
    }
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(timestamp_ns).as_bytes());
    out.push(b'\n');
    true
}

/// Backslash-escapes the given specials; backslashes become `/`, line breaks spaces. Runs of
/// plain bytes are copied whole (byte-by-byte pushes were a quarter of the encoding time).
fn escape(out: &mut Vec<u8>, s: &str, specials: &[u8]) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let swap: &[u8] = match c {
            b'\n' | b'\r' => b" ",
            b'\\' => b"/",
            c if specials.contains(&c) => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(&[b'\\', c]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(swap);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(m: &str, tags: &mut [(&str, &str)], fields: &[(&str, Field)]) -> String {
        let mut out = Vec::new();
        write_point(&mut out, m, tags, fields, 1_700_000_000_000_000_000, false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shapes_and_escapes() {
        let l = line(
            "container cpu,x",
            &mut [
                ("name", "a b"),
                ("id", "/docker/x"),
                ("empty", ""),
                ("k=1", "v,2"),
            ],
            &[
                ("usage", Field::F64(1.5)),
                ("n", Field::I64(-3)),
                ("u", Field::U64(7)),
                ("s", Field::Str("say \"hi\" \\o/")),
                ("ok", Field::Bool(true)),
            ],
        );
        assert_eq!(
            l,
            "container\\ cpu\\,x,id=/docker/x,k\\=1=v\\,2,name=a\\ b usage=1.5,n=-3i,u=7i,s=\"say \\\"hi\\\" \\\\o/\",ok=true 1700000000000000000\n"
        );
    }

    #[test]
    fn no_fields_no_point_and_nan_dropped() {
        let mut out = Vec::new();
        assert!(!write_point(
            &mut out,
            "m",
            &mut [],
            &[("x", Field::F64(f64::NAN))],
            0,
            false
        ));
        assert!(out.is_empty());
        let l = line(
            "m",
            &mut [],
            &[("x", Field::F64(f64::INFINITY)), ("y", Field::F64(2.0))],
        );
        assert_eq!(l, "m y=2.0 1700000000000000000\n");
        let mut out = Vec::new();
        write_point(
            &mut out,
            "m",
            &mut [],
            &[("u", Field::U64(u64::MAX))],
            5,
            true,
        );
        assert_eq!(out, b"m u=18446744073709551615u 5\n");
    }

    fn name() -> impl Strategy<Value = String> {
        // Everything that needs escaping, unicode, and plain text; no line breaks (they are
        // turned into spaces, which a round trip cannot undo).
        prop::string::string_regex("[a-zA-Z0-9 ,=\"\\\\éø水🙂_.-]{1,12}").unwrap()
    }

    proptest! {
        #[test]
        fn round_trips_through_the_reference_parser(
            m in name().prop_filter("# starts a comment", |m| !m.starts_with('#') && !m.starts_with(' ')),
            tags in prop::collection::btree_map(name(), name(), 0..4),
            fkeys in prop::collection::btree_set(name(), 1..4),
            sval in prop::string::string_regex("[a-z ,=\"\\\\水]{0,10}").unwrap(),
            ival in any::<i64>(),
            fval in -1e12f64..1e12,
        ) {
            let mut tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let kinds = [Field::I64(ival), Field::F64(fval), Field::Str(&sval)];
            let fields: Vec<(&str, Field)> = fkeys.iter().zip(kinds.iter().cycle()).map(|(k, f)| (k.as_str(), *f)).collect();
            let mut out = Vec::new();
            prop_assert!(write_point(&mut out, &m, &mut tag_refs, &fields, 42, false));
            let text = String::from_utf8(out).unwrap();
            let parsed: Vec<_> = influxdb_line_protocol::parse_lines(&text).collect();
            prop_assert_eq!(parsed.len(), 1, "{}", text);
            let p = parsed.into_iter().next().unwrap().map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            let slash = |s: &str| s.replace('\\', "/");
            prop_assert_eq!(p.series.measurement.to_string(), slash(&m));
            let mut got_tags: Vec<(String, String)> = p.series.tag_set.iter().flatten().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            got_tags.sort();
            let mut want_tags: Vec<(String, String)> = tags.iter().map(|(k, v)| (slash(k), slash(v))).collect();
            want_tags.sort();
            prop_assert_eq!(got_tags, want_tags);
            prop_assert_eq!(p.field_set.len(), fields.len());
            for ((k, v), (wk, wv)) in p.field_set.iter().zip(fields.iter()) {
                prop_assert_eq!(k.to_string(), slash(wk));
                match (v, wv) {
                    (influxdb_line_protocol::FieldValue::I64(a), Field::I64(b)) => prop_assert_eq!(a, b),
                    (influxdb_line_protocol::FieldValue::F64(a), Field::F64(b)) => prop_assert_eq!(a, b),
                    (influxdb_line_protocol::FieldValue::String(a), Field::Str(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => prop_assert!(false, "field kind {:?} vs {:?}", a, b),
                }
            }
            prop_assert_eq!(p.timestamp, Some(42));
        }
    }
}
