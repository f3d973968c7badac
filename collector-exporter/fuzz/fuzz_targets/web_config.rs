//! The web configuration file (`--web.config.file`): exporter-toolkit YAML for TLS, basic
//! auth, headers and the rate limit, read and checked as at start.
#![no_main]

use collector_exporter::webconfig::WebConfig;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let load = |text: &str| {
        let scratch = common::Scratch::new("web.yml", text);
        WebConfig::load(&scratch.file)
            .err()
            .map(|e| e.to_string().replace(&*scratch.file.to_string_lossy(), ""))
    };
    // What stands where a hash belongs may be a password.
    let mut hidden = Vec::new();
    if let Ok(serde_norway::Value::Mapping(m)) = serde_norway::from_str(text) {
        if let Some(serde_norway::Value::Mapping(users)) = m.get("basic_auth_users") {
            for v in users.values() {
                if let serde_norway::Value::String(s) = v {
                    hidden.push(s.clone());
                }
            }
        }
    }
    common::check_error(text, &hidden, load);
});
