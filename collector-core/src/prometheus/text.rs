//! The exposition written straight into a `String`: each container's label set is escaped
//! once per scrape into one buffer, so a sample is its name, a copy of that text, perhaps one
//! more label, and a number.

use std::fmt::Error as FmtError;

use super::{container_labels, Format, Kind, Options, Out, Samples, Value};
use crate::collector::Snapshot;

/// Takes the text written so far (and should empty the `String`); an error stops the writing.
pub(super) type Flush<'f> = &'f mut dyn FnMut(&mut String) -> Result<(), FmtError>;

pub(super) struct TextOut<'a, 'f> {
    out: &'a mut String,
    format: Format,
    /// Handed the text whenever it passes `chunk` bytes, between samples.
    flush: Option<(usize, Flush<'f>)>,
    /// Every container's escaped label set (`id="…",name="…"`), back to back.
    labels: String,
    /// Where each container's label set ends in `labels`.
    ends: Vec<usize>,
}

impl<'a, 'f> TextOut<'a, 'f> {
    pub(super) fn new(
        out: &'a mut String,
        snap: &Snapshot,
        options: &Options,
        format: Format,
        flush: Option<(usize, Flush<'f>)>,
    ) -> Self {
        let names = options.label_names();
        let mut labels = String::with_capacity(snap.containers.len() * 160);
        let mut ends = Vec::with_capacity(snap.containers.len());
        for c in &snap.containers {
            let mut first = true;
            container_labels(c, options, &names, |k, v| {
                if !first {
                    labels.push(',');
                }
                first = false;
                push_label(&mut labels, k, v);
            });
            ends.push(labels.len());
        }
        TextOut {
            out,
            format,
            flush,
            labels,
            ends,
        }
    }
}

impl TextOut<'_, '_> {
    fn maybe_flush(&mut self) -> Result<(), FmtError> {
        match &mut self.flush {
            Some((chunk, f)) if self.out.len() >= *chunk => f(self.out),
            _ => Ok(()),
        }
    }
}

impl Out for TextOut<'_, '_> {
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: &mut dyn FnMut(&mut dyn Samples) -> Result<(), FmtError>,
    ) -> Result<(), FmtError> {
        let counter = kind == Kind::Counter;
        // The 0.0.4 format names a counter family by its samples' name; OpenMetrics without
        // the `_total`.
        let suffix = if counter && self.format == Format::PrometheusText {
            "_total"
        } else {
            ""
        };
        let o = &mut *self.out;
        for (line, tail) in [("# HELP ", help), ("# TYPE ", "")] {
            o.push_str(line);
            o.push_str(name);
            o.push_str(suffix);
            o.push(' ');
            if line == "# HELP " {
                push_help(o, tail);
            } else {
                o.push_str(if counter { "counter" } else { "gauge" });
            }
            o.push('\n');
        }
        let mut s = TextSamples {
            w: self,
            name,
            suffix: kind.sample_suffix(),
        };
        samples(&mut s)
    }
}

struct TextSamples<'w, 'a, 'f, 'n> {
    w: &'w mut TextOut<'a, 'f>,
    name: &'n str,
    suffix: &'static str,
}

impl Samples for TextSamples<'_, '_, '_, '_> {
    fn container(&mut self, i: usize, extra: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        let w = &mut *self.w;
        let start = if i == 0 { 0 } else { w.ends[i - 1] };
        let labels = &w.labels[start..w.ends[i]];
        let o = &mut *w.out;
        o.push_str(self.name);
        o.push_str(self.suffix);
        o.push('{');
        o.push_str(labels);
        for (n, (k, x)) in extra.iter().enumerate() {
            if n > 0 || !labels.is_empty() {
                o.push(',');
            }
            push_label(o, k, x);
        }
        o.push('}');
        push_value(o, v);
        w.maybe_flush()
    }

    fn plain(&mut self, labels: &[(&str, &str)], v: Value) -> Result<(), FmtError> {
        let o = &mut *self.w.out;
        o.push_str(self.name);
        o.push_str(self.suffix);
        if !labels.is_empty() {
            o.push('{');
            for (n, (k, x)) in labels.iter().enumerate() {
                if n > 0 {
                    o.push(',');
                }
                push_label(o, k, x);
            }
            o.push('}');
        }
        push_value(o, v);
        self.w.maybe_flush()
    }
}

/// `key="value"`, the value escaped as both text formats want (`\\`, `\"`, `\n`).
fn push_label(o: &mut String, key: &str, value: &str) {
    o.push_str(key);
    o.push_str("=\"");
    if value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        for ch in value.chars() {
            match ch {
                '\\' => o.push_str("\\\\"),
                '"' => o.push_str("\\\""),
                '\n' => o.push_str("\\n"),
                _ => o.push(ch),
            }
        }
    } else {
        o.push_str(value);
    }
    o.push('"');
}

/// HELP text with `\` and newlines escaped (the only two the formats escape there).
fn push_help(o: &mut String, help: &str) {
    for ch in help.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            _ => o.push(ch),
        }
    }
}

/// ` <value>\n`: integers in full, floats in their shortest exact form.
fn push_value(o: &mut String, v: Value) {
    o.push(' ');
    match v {
        Value::Int(n) => o.push_str(itoa::Buffer::new().format(n)),
        Value::Float(f) if f.is_finite() => o.push_str(dtoa::Buffer::new().format_finite(f)),
        Value::Float(f) if f.is_nan() => o.push_str("NaN"),
        Value::Float(f) if f > 0.0 => o.push_str("+Inf"),
        Value::Float(_) => o.push_str("-Inf"),
    }
    o.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut o = String::new();
        push_label(&mut o, "name", "a\\b\"c\nd");
        assert_eq!(o, r#"name="a\\b\"c\nd""#);
    }

    #[test]
    fn values_are_exact_and_special_floats_spelled_as_prometheus_reads_them() {
        let mut o = String::new();
        for v in [
            Value::Int(u64::MAX),
            Value::Float(13.918625),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
        ] {
            push_value(&mut o, v);
        }
        assert_eq!(o, " 18446744073709551615\n 13.918625\n NaN\n +Inf\n -Inf\n");
    }
}
