use super::*;
use proptest::prelude::*;

#[test]
fn single_values_and_limits() {
    assert_eq!(single_u64("123\n"), Ok(123));
    assert!(single_u64("").is_err());
    assert!(single_u64("-1").is_err());
    assert!(single_u64("12 13").is_err());
    assert_eq!(limit("max\n"), Ok(None));
    assert_eq!(limit("-1\n"), Ok(None));
    assert_eq!(limit("9223372036854771712\n"), Ok(None));
    assert_eq!(limit("268435456\n"), Ok(Some(268_435_456)));
    assert!(limit("maximum").is_err());
}

#[test]
fn flat_keyed_keeps_good_lines_and_names_the_bad_one() {
    let mut got = Vec::new();
    let r = flat_keyed("a 1\nb\nc 3\nd x\n\n", |k, v| got.push((k.to_string(), v)));
    assert_eq!(got, vec![("a".to_string(), 1), ("c".to_string(), 3)]);
    let err = r.unwrap_err();
    assert!(err.starts_with("line 2:"), "{err}");
}

#[test]
fn cpu_max_forms() {
    assert_eq!(cpu_max("max 100000\n"), Ok((None, 100_000)));
    assert_eq!(cpu_max("50000 100000\n"), Ok((Some(50_000), 100_000)));
    assert!(cpu_max("50000").is_err());
    assert!(cpu_max("a b").is_err());
    assert!(cpu_max("1 2 3").is_err());
}

#[test]
fn io_stat_skips_half_rows() {
    let text = "254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n8:0 rbytes=\n8:16\n";
    let mut rows = Vec::new();
    let r = nested_keyed(text, |ma, mi, pairs| {
        rows.push((
            ma,
            mi,
            pairs.map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>(),
        ))
    });
    assert!(r.is_err());
    // `8:16` alone is a valid (empty) row; `8:0 rbytes=` is not.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].2.len(), 6);
    assert!(rows[1].2.is_empty());
}

#[test]
fn blkio_v1_rows() {
    let text = "254:0 Read 10\n254:0 Write 20\n254:0 Total 30\nTotal 30\n";
    let mut rows = Vec::new();
    blkio_v1(text, |a, b, op, v| rows.push((a, b, op.to_string(), v))).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(blkio_v1("254:0 Read\n", |_, _, _, _| {}).is_err());
    assert!(blkio_v1("Total 0\n", |_, _, _, _| {}).is_ok());
}

#[test]
fn psi_lines() {
    let p = psi("some avg10=1.50 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").unwrap();
    assert_eq!(p.some.avg10, 1.5);
    assert_eq!(p.some.total_us, 42);
    assert_eq!(p.full.unwrap().total_us, 7);
    // Old kernels: cpu.pressure has no full line.
    assert!(psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")
        .unwrap()
        .full
        .is_none());
    assert!(psi("some avg10=0.00 avg60=0.00 total=1\n").is_err());
    assert!(psi("").is_err());
    assert!(psi("odd avg10=0 avg60=0 avg300=0 total=0").is_err());
    assert!(psi("some avg10=NaN avg60=0 avg300=0 total=0").is_err());
    assert!(psi("some avg10=0 avg60=-1.5 avg300=0 total=0").is_err());
    assert!(psi("some avg10=0 avg60=0 avg300=inf total=0").is_err());
}

#[test]
fn net_dev_except_never_stores_skipped_interfaces() {
    let text = "Inter-|   Receive\n face |bytes\n    lo: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n  eth0: 9 1 0 0 0 0 0 0 8 1 0 0 0 0 0 0\n";
    let mut out = Vec::new();
    net_dev_except(text, &mut out, |n| n.starts_with("lo")).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].name.as_str(), out[0].rx_bytes), ("eth0", 9));
    let ptr = out[0].name.as_ptr();
    net_dev_except(text, &mut out, |n| n.starts_with("lo")).unwrap();
    assert_eq!(out[0].name.as_ptr(), ptr, "the name buffer is reused");
    // Copying figures between snapshots reuses the target's buffers too.
    let mut copy = vec![crate::stats::InterfaceStats {
        name: String::with_capacity(16),
        ..Default::default()
    }];
    let before = copy[0].name.as_ptr();
    copy.clone_from(&out);
    assert_eq!(copy, out);
    assert_eq!(copy[0].name.as_ptr(), before);
}

#[test]
fn net_dev_reuses_buffers() {
    let text = "Inter-|   Receive\n face |bytes\n    lo:       1       2    3    4    0     0          0         0        5       6    7    8    0     0       0          0\n  eth0: 9 1 0 0 0 0 0 0 8 1 0 0 0 0 0 0\n";
    let mut out = Vec::new();
    net_dev(text, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (
            out[0].rx_bytes,
            out[0].rx_packets,
            out[0].rx_errors,
            out[0].rx_dropped
        ),
        (1, 2, 3, 4)
    );
    assert_eq!(
        (
            out[0].tx_bytes,
            out[0].tx_packets,
            out[0].tx_errors,
            out[0].tx_dropped
        ),
        (5, 6, 7, 8)
    );
    assert_eq!(out[1].name, "eth0");
    let cap = out[0].name.capacity();
    net_dev(text, &mut out).unwrap();
    assert_eq!(out[0].name.capacity(), cap);
    // A row without a name is not an interface.
    let nameless = "h\nh\n      :  0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    assert!(net_dev(nameless, &mut out).is_err());
    assert!(out.is_empty());
    net_dev(text, &mut out).unwrap();
    // A cut-off last row is dropped and reported.
    let cut = &text[..text.len() - 10];
    assert!(net_dev(cut, &mut out).is_err());
    assert_eq!(out.len(), 1);
}

#[test]
fn task_state_after_last_paren() {
    assert_eq!(task_state("12 (sh) R 1 2"), Some(b'R'));
    assert_eq!(task_state("12 (a) b) (c) S 1"), Some(b'S'));
    assert_eq!(task_state("12 (sh"), None);
    assert_eq!(task_state("12 (sh)"), None);
}

/// A real row (`/proc/self/stat` of `cat`), and one whose comm is `x) (y z`.
#[test]
fn pid_stat_counts_fields_from_the_last_paren() {
    let tail = "R 22443 22443 13868 0 -1 4194304 119 0 0 0 7 3 0 0 20 0 2 0 105732 \
        3133440 410 18446744073709551615 94265061900288 0";
    let line = format!("22445 (cat) {tail}\n");
    let s = pid_stat(&line).unwrap();
    assert_eq!(
        s,
        PidStat {
            comm: "cat",
            state: b'R',
            ppid: 22443,
            utime: 7,
            stime: 3,
            threads: 2,
            start_ticks: 105732,
            rss_pages: 410,
        }
    );
    let line = format!("22449 (x) (y z) {tail}");
    let odd = pid_stat(&line).unwrap();
    assert_eq!((odd.comm, odd.ppid), ("x) (y z", 22443));
    assert_eq!(
        pid_stat("7 () R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0")
            .unwrap()
            .comm,
        ""
    );
    // Cut short, a letter for a number, a word for the state, no parentheses.
    assert!(pid_stat("22445 (cat) R 22443 22443").is_err());
    assert!(pid_stat(&format!("1 (a) {}", tail.replace(" 410 ", " x "))).is_err());
    assert!(pid_stat(&format!("1 (a) {}", tail.replacen('R', "RS", 1))).is_err());
    assert!(pid_stat(&format!("1 )a( {tail}")).is_err());
    assert!(pid_stat(tail).is_err());
}

#[test]
fn status_effective_uid_and_boot_time() {
    let status = "Name:\tsh\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
    assert_eq!(status_euid(status), Ok(0));
    assert!(status_euid("Name:\tsh\n").is_err());
    assert!(status_euid("Uid:\t1000\n").is_err());
    let stat = "cpu  1 2 3 4\nintr 5 6\nctxt 7\nbtime 1764000000\nprocesses 9\n";
    assert_eq!(btime(stat), Ok(1_764_000_000));
    assert!(btime("cpu 1 2\n").is_err());
    assert!(btime("btime x\n").is_err());
}

#[test]
fn percpu_list() {
    let mut v = vec![9];
    u64_list("1 2 3 \n", &mut v).unwrap();
    assert_eq!(v, vec![1, 2, 3]);
    assert!(u64_list("1 -2", &mut v).is_err());
    assert!(v.is_empty());
}

proptest! {
    // No input makes a parser panic.
    #[test]
    fn parsers_never_panic(s in "\\PC*") {
        let _ = single_u64(&s);
        let _ = limit(&s);
        let _ = flat_keyed(&s, |_, _| {});
        let _ = cpu_max(&s);
        let _ = nested_keyed(&s, |_, _, p| { p.for_each(drop) });
        let _ = blkio_v1(&s, |_, _, _, _| {});
        let _ = psi(&s);
        let _ = net_dev(&s, &mut Vec::new());
        let _ = task_state(&s);
        let _ = pid_stat(&s);
        let _ = status_euid(&s);
        let _ = btime(&s);
        let _ = u64_list(&s, &mut Vec::new());
        let _ = crate::mountinfo::parse(&s);
    }

    // Structured noise: lines of plausible tokens, which reach deeper branches.
    #[test]
    fn parsers_never_panic_on_plausible_lines(lines in prop::collection::vec(
        prop::collection::vec(prop_oneof![
            Just("some".to_string()), Just("full".to_string()), Just("Total".to_string()),
            Just("254:0".to_string()), Just("avg10=1.0".to_string()), Just("total=5".to_string()),
            Just("rbytes=1".to_string()), Just("lo:".to_string()), Just("-".to_string()),
            "[0-9]{1,25}", "[a-z_=:.]{0,8}",
        ], 0..20), 0..6)) {
        let s: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
        let _ = flat_keyed(&s, |_, _| {});
        let _ = nested_keyed(&s, |_, _, p| { p.for_each(drop) });
        let _ = blkio_v1(&s, |_, _, _, _| {});
        let _ = psi(&s);
        let _ = net_dev(&s, &mut Vec::new());
        let _ = crate::mountinfo::parse(&s);
    }

    #[test]
    fn flat_keyed_round_trips(pairs in prop::collection::vec(("[a-z_]{1,12}", any::<u64>()), 0..30)) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        let mut got = Vec::new();
        flat_keyed(&text, |k, v| got.push((k.to_string(), v))).unwrap();
        prop_assert_eq!(got, pairs);
    }
}

#[test]
fn max_open_files_soft_limit() {
    let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              unlimited            unlimited            seconds   \n\
        Max open files            1024                 524288               files     \n\
        Max locked memory         8388608              8388608              bytes     \n";
    assert_eq!(max_open_files(text), Ok(Some(1024)));
    let unlimited = text.replace("1024 ", "unlimited ");
    assert_eq!(max_open_files(&unlimited), Ok(None));
    assert!(max_open_files("Max cpu time unlimited unlimited seconds\n").is_err());
    assert!(max_open_files("Max open files\n").is_err());
    assert!(max_open_files("Max open files  x1  2 files\n").is_err());
}
