//! Parsers for the values settings take, shared by the flags, the sinks and the web config.
//! Each returns why a value is bad; the caller adds the key.

use std::net::SocketAddr;
use std::time::Duration;

/// `host:port`, `:port` (all interfaces) or `[v6]:port`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("{s:?} is not host:port (e.g. 0.0.0.0:9338, 127.0.0.1:9338, :9338)"))
}

/// `500ms`, `1s`, `2m`, `1h`, or combinations like `1m30s`: whole numbers, each with one of
/// those units, no space between. humantime takes more (days, weeks, microseconds, spaces, a
/// bare `0`); the settings take what they always took.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration like 500ms, 10s, 1m30s");
    let t = s.trim();
    let units_ok = t
        .split(|c: char| c.is_ascii_digit())
        .filter(|u| !u.is_empty())
        .all(|u| matches!(u, "ms" | "s" | "m" | "h"));
    let shape_ok = t.starts_with(|c: char| c.is_ascii_digit())
        && t.ends_with(|c: char| c.is_ascii_alphabetic());
    if !(units_ok && shape_ok) {
        return Err(err());
    }
    humantime::parse_duration(t).map_err(|_| err())
}

/// A duration as `parse_duration` reads it back, for defaults shown in `--help`.
pub fn format_duration(d: Duration) -> String {
    // humantime writes `1m 30s`; the settings take `1m30s`.
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "", "s", "1", "0", "1x", "-1s", "1.5s", "1 s", "1h 30m", "2d", "1w", "5us", "s5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_listen(":9"), Ok("0.0.0.0:9".parse().unwrap()));
        assert!(parse_listen("[::1]:9").is_ok());
    }

    #[test]
    fn every_spelling_the_old_parser_took() {
        for (text, want) in [
            ("0s", 0),
            ("5s", 5_000),
            (" 5s ", 5_000),
            ("100ms", 100),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1h1m1s1ms", 3_661_001),
            ("30s1m", 90_000),
            ("1s1s", 2_000),
            ("007s", 7_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(want)),
                "{text}"
            );
        }
        for d in [0, 1, 250, 5_000, 60_000, 90_000, 3_600_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
