//! The pushed series against /metrics' text: the same names, labels and values; staleness
//! markers for what went away; a batch gathered per series, oldest first.

use std::collections::BTreeMap;

use prost::Message;

use super::proto::{TimeSeries, WriteRequest, STALE_NAN};
use super::*;
use crate::prometheus::{render, Format};

/// A real sweep of a kernel capture, plus a copy of its first container with labels that
/// need escaping in the text format and a runtime label from the allowlist.
fn snapshot() -> Snapshot {
    let mut s = crate::testutil::fixture_collector("cgroup-v2-kubepods").sweep();
    assert!(!s.containers.is_empty());
    s.containers[0].meta.image = Some("img:1".into());
    // Families with two labels of their own (direction and scope).
    s.containers[0].stats.peers.current = Some(crate::stats::PeerCounts {
        inbound: crate::stats::ScopeCounts {
            container: 2,
            cluster: 1,
            external: 0,
        },
        outbound: crate::stats::ScopeCounts {
            container: 1,
            cluster: 0,
            external: 3,
        },
    });
    let mut odd = s.containers[0].clone();
    odd.id.push_str("/odd");
    odd.meta.name = Some("quote\" back\\slash new\nline".into());
    odd.meta.pod = Some(String::new());
    odd.meta.labels.insert("tier".into(), "back\\end".into());
    s.containers.push(odd);
    s
}

fn options() -> Options {
    Options {
        label_allowlist: vec!["tier".into()],
    }
}

type Labels = Vec<(String, String)>;

/// The samples of a text exposition: (sorted labels with `__name__`, value).
fn text_samples(body: &str) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
        let mut labels = vec![("__name__".to_string(), name.to_string())];
        let mut chars = rest.chars().peekable();
        loop {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            if key.is_empty() || key == "}" {
                break;
            }
            assert_eq!(chars.next(), Some('"'));
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some(c) => v.push(c),
                        None => {}
                    },
                    '"' => break,
                    c => v.push(c),
                }
            }
            labels.push((key.trim_start_matches(',').to_string(), v));
        }
        labels.sort();
        out.insert(labels, value.parse().unwrap());
    }
    out
}

fn decode(items: &[Vec<u8>]) -> Vec<TimeSeries> {
    items
        .iter()
        .map(|i| TimeSeries::decode(&i[..]).unwrap())
        .collect()
}

fn labels(ts: &TimeSeries) -> Labels {
    ts.labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

#[test]
fn series_are_those_of_the_text_exposition() {
    let snap = snapshot();
    let text = render(&snap, &options(), Format::PrometheusText);
    let want = text_samples(&text);
    let mut enc = SeriesEncoder::new(options(), Vec::new());
    let mut items = Vec::new();
    enc.encode(&snap, &mut items);
    let mut got = BTreeMap::new();
    for ts in decode(&items) {
        let l = labels(&ts);
        let mut sorted = l.clone();
        sorted.sort();
        assert_eq!(l, sorted, "labels sorted by name");
        assert_eq!(ts.samples.len(), 1);
        assert_eq!(ts.samples[0].timestamp, snap.timestamp_ms as i64);
        assert!(
            got.insert(l, ts.samples[0].value).is_none(),
            "a series twice"
        );
    }
    assert_eq!(got.len(), want.len());
    for (l, v) in &want {
        let g = got.get(l).unwrap_or_else(|| panic!("{l:?} not pushed"));
        // The text has the shortest form of each float; the push the float itself.
        assert!((g - v).abs() <= v.abs() * 1e-15, "{l:?}: {g} vs {v}");
    }
    assert!(want.keys().any(|l| l.contains(&(
        "__name__".into(),
        "container_cpu_usage_seconds_total".into()
    ))));
    assert!(want
        .keys()
        .any(|l| l.contains(&("container_label_tier".into(), "back\\end".into()))));
}

#[test]
fn external_labels_join_every_series_unless_it_has_that_label() {
    let snap = snapshot();
    let external = vec![
        ("node".to_string(), "n1".to_string()),
        ("image".to_string(), "not-this".to_string()),
        ("Zone".to_string(), "Z".to_string()),
        ("cpu".to_string(), "not-this".to_string()),
    ];
    let mut enc = SeriesEncoder::new(options(), external);
    let mut items = Vec::new();
    enc.encode(&snap, &mut items);
    let image = snap.containers[0].meta.image.clone().unwrap();
    for ts in decode(&items) {
        let l = labels(&ts);
        let mut sorted = l.clone();
        sorted.sort();
        assert_eq!(l, sorted);
        let get = |k: &str| l.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("node"), Some("n1"));
        assert_eq!(get("Zone"), Some("Z"), "sorted before __name__: {l:?}");
        assert_eq!(l[0].0, "Zone");
        if get("id") == Some(&snap.containers[0].id) {
            assert_eq!(get("image"), Some(image.as_str()));
        }
        if get("__name__") == Some("container_cpu_usage_seconds_total") {
            assert_ne!(get("cpu"), Some("not-this"), "{l:?}");
        }
        assert!(l.iter().filter(|(n, _)| n == "cpu").count() <= 1);
    }
}

#[test]
fn series_that_went_away_get_a_staleness_marker_once() {
    let mut snap = snapshot();
    let mut enc = SeriesEncoder::new(options(), vec![("node".into(), "n1".into())]);
    let mut first = Vec::new();
    enc.encode(&snap, &mut first);
    let gone_id = snap.containers.last().unwrap().id.clone();
    let gone: Vec<Labels> = decode(&first)
        .iter()
        .map(labels)
        .filter(|l| l.contains(&("id".into(), gone_id.clone())))
        .collect();
    assert!(gone.len() > 10, "{}", gone.len());
    let first_ts = snap.timestamp_ms;
    snap.containers.pop();
    snap.timestamp_ms += 1000;
    let later = snap;
    let mut second = Vec::new();
    enc.encode(&later, &mut second);
    let stale: Vec<TimeSeries> = decode(&second)
        .into_iter()
        .filter(|t| t.samples[0].value.to_bits() == STALE_NAN)
        .collect();
    let mut stale_labels: Vec<Labels> = stale.iter().map(labels).collect();
    stale_labels.sort();
    let mut want = gone.clone();
    want.sort();
    assert_eq!(stale_labels, want);
    assert!(stale
        .iter()
        .all(|t| t.samples[0].timestamp == later.timestamp_ms as i64));
    assert_eq!(second.len() - stale.len(), first.len() - gone.len());
    // Marked once: the next push has none.
    let mut third = Vec::new();
    let mut later = later;
    later.timestamp_ms += 1000;
    enc.encode(&later, &mut third);
    assert!(first_ts < later.timestamp_ms);
    assert_eq!(third.len(), second.len() - stale.len());
}

#[test]
fn a_batch_gathers_each_series_oldest_first() {
    let mut snap = snapshot();
    let mut enc = SeriesEncoder::new(Options::default(), Vec::new());
    let mut items = Vec::new();
    let (earlier, later) = (snap.timestamp_ms + 1000, snap.timestamp_ms + 5000);
    // The later push queued first: the request still has each series oldest first.
    snap.timestamp_ms = later;
    enc.encode(&snap, &mut items);
    let per_push = items.len();
    snap.timestamp_ms = earlier;
    enc.encode(&snap, &mut items);
    items.push(b"\x0a\x00junk".to_vec());
    let mut body = Vec::new();
    let bad = RemoteWriteSink::write_request(&items, &mut body);
    assert_eq!(bad, vec![items.len() - 1]);
    let req = WriteRequest::decode(&body[..]).unwrap();
    assert_eq!(req.timeseries.len(), per_push);
    for ts in &req.timeseries {
        let t: Vec<i64> = ts.samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(t, vec![earlier as i64, later as i64]);
        assert_eq!(ts.labels[0].name, "__name__");
    }
}

#[test]
fn settings_are_checked_at_start() {
    let ok = RemoteWriteConfig::new("http://127.0.0.1:9/api/v1/write");
    assert!(RemoteWriteSink::new(ok.clone()).is_ok());
    let mut bad = vec![RemoteWriteConfig::new("127.0.0.1:9")];
    for (k, v) in [
        ("0node", "x"),
        ("__name__", "x"),
        ("node", ""),
        ("a-b", "x"),
    ] {
        let mut c = ok.clone();
        c.external_labels = vec![(k.into(), v.into())];
        bad.push(c);
    }
    for (k, v) in [
        ("Content-Type", "text/plain"),
        ("X Bad", "1"),
        ("X-A", "a\nb"),
    ] {
        let mut c = ok.clone();
        c.headers = vec![(k.into(), v.into())];
        bad.push(c);
    }
    for c in bad {
        assert!(RemoteWriteSink::new(c.clone()).is_err(), "{c:?}");
    }
    let mut c = ok;
    c.headers = vec![("X-Scope-OrgID".into(), "tenant-1".into())];
    c.auth = Auth::Bearer(Secret("t0ken".into()));
    let s = RemoteWriteSink::new(c.clone()).unwrap();
    assert_eq!(s.headers["x-scope-orgid"], "tenant-1");
    assert_eq!(s.headers["authorization"], "Bearer t0ken");
    assert!(!format!("{c:?} {s:?}").contains("t0ken"));
}

#[test]
fn extra_series_are_pushed_with_the_snapshot_and_go_stale_too() {
    let mut snap = snapshot();
    let mut enc = SeriesEncoder::new(Options::default(), vec![("node".into(), "n1".into())]);
    let extra = "# TYPE collector_sweeps_total counter\ncollector_sweeps_total 7\n\
                 container_policy_violation{id=\"/x\",reason=\"image \\\"bad\\\"\"} 1\nbroken line\n";
    let mut items = Vec::new();
    enc.encode_with(&snap, extra, &mut items);
    let all = decode(&items);
    let find = |name: &str| {
        all.iter()
            .find(|t| {
                t.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
            })
            .unwrap_or_else(|| panic!("{name} not pushed"))
    };
    let sweeps = find("collector_sweeps_total");
    assert_eq!(sweeps.samples[0].value, 7.0);
    assert_eq!(sweeps.samples[0].timestamp, snap.timestamp_ms as i64);
    assert_eq!(
        labels(sweeps),
        vec![
            ("__name__".to_string(), "collector_sweeps_total".to_string()),
            ("node".to_string(), "n1".to_string())
        ]
    );
    let v = find("container_policy_violation");
    assert!(labels(v).contains(&("reason".into(), "image \"bad\"".into())));
    // The violation ends: its series goes stale; the rest stays.
    snap.timestamp_ms += 1000;
    let mut next = Vec::new();
    enc.encode_with(&snap, "collector_sweeps_total 8\n", &mut next);
    let stale: Vec<Labels> = decode(&next)
        .iter()
        .filter(|t| t.samples[0].value.to_bits() == STALE_NAN)
        .map(labels)
        .collect();
    assert_eq!(stale, vec![labels(v)]);
}
