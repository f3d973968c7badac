//! Reading a `_bulk` answer item by item (Elasticsearch 7/8, OpenSearch): each item is
//! `{ "<op>": { "status": N, "error": { "type", "reason", "caused_by" }, ... } }`, in the
//! order of the request.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<BTreeMap<String, ItemResult>>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, rename = "_index")]
    index: Option<String>,
    #[serde(default, rename = "_id")]
    id: Option<String>,
}

/// An item the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Position in the request.
    pub pos: usize,
    /// The item's HTTP status, like 400.
    pub status: u16,
    /// `mapper_parsing_exception: failed to parse field [...] (caused by ...)`.
    pub reason: String,
    /// The index the item went to; `None` when the answer does not say.
    pub index: Option<String>,
    /// The document's `_id`; `None` when the answer does not say.
    pub id: Option<String>,
}

/// What became of each item of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Items that landed (2xx), or were already there (409 on `create`).
    pub ok: usize,
    /// 429 and 5xx: the server may take them later.
    pub retry: Vec<usize>,
    /// Other refusals: they would fail again.
    pub rejected: Vec<ItemError>,
}

/// Reads a 2xx `_bulk` answer for a request of `n` items. An answer that is not a bulk
/// response, or that accounts for a different number of items while reporting errors, is an
/// error (the caller retries the batch).
pub fn classify(body: &[u8], n: usize) -> Result<Verdict, String> {
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        format!(
            "unreadable _bulk answer ({e}): {:.200}",
            String::from_utf8_lossy(body)
        )
    })?;
    if !b.errors {
        return Ok(Verdict {
            ok: n,
            ..Verdict::default()
        });
    }
    if b.items.len() != n {
        return Err(format!(
            "_bulk answer reports errors for {} items, the request held {n}",
            b.items.len()
        ));
    }
    let mut v = Verdict::default();
    for (pos, item) in b.items.iter().enumerate() {
        let Some((op, r)) = item.iter().next() else {
            return Err(format!("_bulk answer item {pos} is empty"));
        };
        match r.status {
            200..=299 => v.ok += 1,
            // The document id is derived from its content: a `create` that finds it there is
            // a resend of something that landed.
            409 if op == "create" => v.ok += 1,
            429 | 500..=599 => v.retry.push(pos),
            status => v.rejected.push(ItemError {
                pos,
                status,
                reason: r
                    .error
                    .as_ref()
                    .map(describe)
                    .unwrap_or_else(|| format!("status {status}")),
                index: r.index.clone(),
                id: r.id.clone(),
            }),
        }
    }
    Ok(v)
}

/// `type: reason (caused by type: reason)`, or the text of an error that is a plain string;
/// on one line (reasons may quote a parser's multi-line message), at most 600 characters.
pub fn describe(e: &Value) -> String {
    one_line(&describe_raw(e), 600)
}

fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "...";
    }
    out
}

fn describe_raw(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Object(_) => {
            let one = |e: &Value| {
                let t = e["type"].as_str().unwrap_or("error");
                match e["reason"].as_str() {
                    Some(r) => format!("{t}: {r}"),
                    None => t.to_string(),
                }
            };
            let mut last = one(e);
            let mut s = last.clone();
            let mut cause = &e["caused_by"];
            let mut depth = 0;
            while cause.is_object() && depth < 3 {
                // Nested causes often repeat the same message.
                let c = one(cause);
                if c != last {
                    s.push_str(&format!(" (caused by {c})"));
                    last = c;
                }
                cause = &cause["caused_by"];
                depth += 1;
            }
            s
        }
        other => other.to_string(),
    }
}

/// The `error` of a whole-request failure (`{"error": {...}, "status": N}`), for logs.
pub fn request_error(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if !v["error"].is_null() => describe(&v["error"]),
        _ => one_line(&String::from_utf8_lossy(body), 300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_good_skips_the_items() {
        let v = classify(
            br#"{"took":3,"errors":false,"items":[{"create":{"status":201}}]}"#,
            1,
        )
        .unwrap();
        assert_eq!(v.ok, 1);
        // filter_path=errors,... leaves only what is asked for.
        assert_eq!(classify(br#"{"errors":false}"#, 7).unwrap().ok, 7);
    }

    #[test]
    fn per_item_statuses() {
        let body = br#"{"took":5,"errors":true,"items":[
            {"create":{"_index":"ds","_id":"a","status":201,"result":"created"}},
            {"create":{"_index":"ds","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"ds","_id":"c","status":400,"error":{"type":"document_parsing_exception","reason":"[1:2] failed to parse field [x] of type [long]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"y\""}}}},
            {"create":{"_index":"ds","_id":"d","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[d]: version conflict, document already exists"}}},
            {"index":{"_index":"i","_id":"e","status":409,"error":"conflict"}},
            {"index":{"_index":"i","_id":"f","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        let v = classify(body, 6).unwrap();
        assert_eq!(v.ok, 2);
        assert_eq!(v.retry, vec![1, 5]);
        assert_eq!(v.rejected.len(), 2);
        assert_eq!(v.rejected[0].pos, 2);
        assert_eq!(v.rejected[0].status, 400);
        assert_eq!(v.rejected[0].id.as_deref(), Some("c"));
        assert_eq!(
            v.rejected[0].reason,
            "document_parsing_exception: [1:2] failed to parse field [x] of type [long] (caused by illegal_argument_exception: For input string: \"y\")"
        );
        assert_eq!(v.rejected[1].reason, "conflict");
        let multi = serde_json::json!({"type": "t", "reason": "line one\n  at [Source: x]"});
        assert_eq!(describe(&multi), "t: line one at [Source: x]");
        assert!(describe(&serde_json::json!("x".repeat(2000))).len() < 700);
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(classify(b"<html>proxy</html>", 1).is_err());
        assert!(classify(br#"{"errors":true,"items":[]}"#, 1).is_err());
        assert_eq!(
            request_error(
                br#"{"error":{"type":"illegal_argument_exception","reason":"bad"},"status":400}"#
            ),
            "illegal_argument_exception: bad"
        );
        assert_eq!(
            request_error(b"Request Entity Too Large"),
            "Request Entity Too Large"
        );
    }
}
