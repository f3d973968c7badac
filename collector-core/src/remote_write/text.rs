//! Samples of the Prometheus text format (0.0.4), for series an embedder serves from a
//! registry of its own (the exporter's `collector_*`) and wants pushed too.

/// One sample line: its name, labels (unescaped) and value.
pub(crate) struct Line<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// The sample lines of `text`; comments and blank lines are skipped, and so is a line that is
/// not a sample (the reason is returned with it, for the caller to report).
pub(crate) fn samples(text: &str) -> impl Iterator<Item = Result<Line<'_>, String>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse(l).ok_or_else(|| format!("not a sample line: {l:.200}")))
}

fn parse(line: &str) -> Option<Line<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = body;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let (value, after) = unescape(after)?;
            labels.push((key, value));
            rest = after;
        }
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Line {
        name,
        labels,
        value,
    })
}

/// A label value up to its closing quote, unescaped, and what follows the quote.
fn unescape(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_with_escapes_and_special_values() {
        let text = "# HELP x_total A counter.\n# TYPE x_total counter\nx_total 3\n\
                    y{a=\"1\",b=\"q\\\"u\\\\o\\nte, {}\"} -2.5e-3\nz{} NaN\nw{k=\"v\",} +Inf\n\n# EOF\n";
        let got: Vec<Line> = samples(text).map(Result::unwrap).collect();
        assert_eq!(got.len(), 4);
        assert_eq!((got[0].name, got[0].value), ("x_total", 3.0));
        assert!(got[0].labels.is_empty());
        assert_eq!(got[1].name, "y");
        assert_eq!(
            got[1].labels,
            vec![("a", "1".to_string()), ("b", "q\"u\\o\nte, {}".to_string())]
        );
        assert_eq!(got[1].value, -2.5e-3);
        assert!(got[2].value.is_nan());
        assert_eq!(got[3].value, f64::INFINITY);
        assert_eq!(got[3].labels, vec![("k", "v".to_string())]);
        for bad in ["x", "x{a=\"1\" 2", "x{a=1} 2", "x nope"] {
            assert!(samples(bad).next().unwrap().is_err(), "{bad}");
        }
    }
}
