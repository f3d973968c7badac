//! The one-value parsers: `single_u64`, `limit`, `cpu_max`, `u64_list`, `major_minor`,
//! `task_state`, `pid_stat`, `status_euid` and `btime`, each given the whole input.
#![no_main]

use collector_core::parse::{
    btime, cpu_max, limit, major_minor, pid_stat, single_u64, status_euid, task_state, u64_list,
    V1_UNLIMITED_FLOOR,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let t = text.trim();

    // single_u64 and limit agree: limit is single_u64 plus `max`, `-1` and the v1 floor.
    let single = single_u64(text);
    match limit(text) {
        Ok(None) => assert!(
            t == "max" || t == "-1" || single.as_ref().is_ok_and(|&v| v >= V1_UNLIMITED_FLOOR),
            "limit says unlimited for {t:?}"
        ),
        Ok(Some(v)) => {
            assert!(v < V1_UNLIMITED_FLOOR);
            assert_eq!(single, Ok(v), "limit and single_u64 disagree");
        }
        Err(_) => assert!(single.is_err(), "limit failed where single_u64 did not"),
    }

    // cpu_max: two words, the first may be `max`.
    if let Ok((quota, _period)) = cpu_max(text) {
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        assert_eq!(words.len(), 2, "cpu_max accepted {} words", words.len());
        assert_eq!(quota.is_none(), words[0] == "max");
    }

    // u64_list: all words or nothing, and the buffer is cleared first.
    let mut out = vec![1, 2, 3];
    match u64_list(text, &mut out) {
        Ok(()) => assert_eq!(out.len(), text.split_ascii_whitespace().count()),
        Err(_) => assert!(
            out.is_empty(),
            "u64_list left {} values after an error",
            out.len()
        ),
    }

    // major_minor round-trips through its canonical form.
    if let Some((a, b)) = major_minor(text) {
        assert_eq!(major_minor(&format!("{a}:{b}")), Some((a, b)));
    }

    // task_state: the first byte of the first word after the last `)`.
    if let Some(s) = task_state(text) {
        assert!(text.contains(')'));
        assert!(!s.is_ascii_whitespace(), "state is whitespace");
    }

    // pid_stat: the comm is what the outermost parentheses hold, and its state is task_state's.
    if let Ok(s) = pid_stat(text) {
        assert!(text.contains(&format!("({})", s.comm)), "comm {:?}", s.comm);
        assert_eq!(
            task_state(text),
            Some(s.state),
            "pid_stat and task_state disagree"
        );
    }

    // status_euid and btime read only their own rows.
    if status_euid(text).is_ok() {
        assert!(text.contains("Uid:"));
    }
    if btime(text).is_ok() {
        assert!(text.contains("btime "));
    }
});
