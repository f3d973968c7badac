//! The exporter's TOML configuration file (`--config.file`), `[[sinks]]` included, read and
//! checked as at start.
#![no_main]

use collector_exporter::config::{Flags, Settings};
use libfuzzer_sys::fuzz_target;

mod common;

/// The values of secret keys anywhere in the file.
fn secrets(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                match v {
                    toml::Value::String(s)
                        if matches!(
                            k.as_str(),
                            "password" | "token" | "api_key" | "bearer_token"
                        ) =>
                    {
                        out.push(s.clone())
                    }
                    v => secrets(v, out),
                }
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| secrets(v, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let load = |text: &str| {
        let scratch = common::Scratch::new("collector.toml", text);
        let flags = Flags {
            config_file: Some(scratch.file.clone()),
            ..Flags::default()
        };
        Settings::resolve(&flags)
            .err()
            .map(|e| e.to_string().replace(&*scratch.file.to_string_lossy(), ""))
    };
    let mut hidden = Vec::new();
    if let Ok(v) = text.parse::<toml::Value>() {
        secrets(&v, &mut hidden);
    }
    common::check_error(text, &hidden, load);
});
