//! A sink's on-disk spool reopened after damage: items are pushed and some taken, then the
//! segment files are flipped or cut as a crash or a bad disk would leave them, and the spool is
//! opened again and drained.
//!
//! Undamaged, every item comes back once, in order. Cut short, what comes back is a prefix of
//! what was not taken. Flipped, opening and draining still work and leave nothing behind.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use collector_core::fuzzing::Spool;
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Case {
    items: Vec<Vec<u8>>,
    taken: usize,
    batch: usize,
    flips: Vec<(u32, u8)>,
    cut: Option<u32>,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> libfuzzer_sys::arbitrary::Result<Self> {
        let items: Vec<Vec<u8>> = u.arbitrary()?;
        let taken = u.int_in_range(0..=items.len())?;
        let batch = u.int_in_range(1..=8)?;
        let flips: Vec<(u32, u8)> = u.arbitrary()?;
        let cut: Option<u32> = u.arbitrary()?;
        Ok(Case {
            items,
            taken,
            batch,
            flips,
            cut,
        })
    }
}

fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "spool-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the scratch dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    s.sort();
    s
}

fn run(case: &Case, dir: &Path) {
    const BOUND: u64 = 16 << 20;
    {
        let mut s = Spool::open(dir, BOUND).expect("a new spool opens");
        s.push(&case.items).expect("push");
        let got = s.take(case.taken, case.batch).expect("take");
        assert_eq!(got, case.items[..case.taken], "taken before the damage");
    }
    let rest = &case.items[case.taken..];
    // Damage: flip bytes, then cut the last segment short.
    let segs = segments(dir);
    let mut bytes: Vec<Vec<u8>> = segs
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let total: usize = bytes.iter().map(Vec::len).sum();
    let mut flipped = false;
    if total > 0 {
        for &(at, x) in &case.flips {
            let mut at = at as usize % total;
            for b in bytes.iter_mut() {
                if at < b.len() {
                    flipped |= x != 0;
                    b[at] ^= x;
                    break;
                }
                at -= b.len();
            }
        }
    }
    let mut cut = false;
    if let (Some(c), Some(last)) = (case.cut, bytes.last_mut()) {
        let keep = c as usize % (last.len() + 1);
        cut = keep < last.len();
        last.truncate(keep);
    }
    for (p, b) in segs.iter().zip(&bytes) {
        std::fs::write(p, b).expect("write");
    }

    let mut s = Spool::open(dir, BOUND).expect("a damaged spool still opens");
    let waiting = s.len();
    let back = s
        .take(usize::MAX, case.batch)
        .expect("a damaged spool drains");
    assert!(
        back.len() as u64 <= waiting,
        "more came back than was waiting"
    );
    assert_eq!(s.len(), 0, "items left after draining");
    if !flipped {
        if cut {
            assert!(
                back.len() <= rest.len() && back[..] == rest[..back.len()],
                "not a prefix after a cut"
            );
        } else {
            assert_eq!(back, rest, "undamaged, every item back in order");
        }
    }
    // The spool keeps working after the damage.
    s.push(&[b"after".to_vec()]).expect("push after damage");
    assert_eq!(
        s.take(1, 1).expect("take after damage"),
        [b"after".to_vec()]
    );
}

fuzz_target!(|case: Case| {
    let dir = scratch();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let r = std::panic::catch_unwind(|| run(&case, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
});
