//! `basic_auth_users`: HTTP basic auth against bcrypt hashes, with a cache of successes and
//! unknown users answered in the time a known one takes.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine as _;

use super::bad;
use crate::error::Result;

/// Successful (user, password) checks remembered, so that a scraper's every request does not
/// pay for bcrypt; only keyed hashes are kept, never a password.
const CACHE_CAPACITY: usize = 256;

pub struct BasicAuth {
    /// (user, bcrypt hash), in file order.
    pub(super) users: Vec<(String, String)>,
    /// The costliest user's hash with its hash part blanked: checked for unknown users, so
    /// that their answer takes as long as a known user's, and never a match (nor taken as
    /// one: an unknown user is refused whatever bcrypt says).
    pub(super) decoy: String,
    cache_key: ring::hmac::Key,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time: each is 50-400 ms of CPU at cost 10, and a flood of wrong
    /// passwords should not take every core (the exporter-toolkit does the same).
    gate: tokio::sync::Semaphore,
    bcrypt_runs: AtomicU64,
}

impl BasicAuth {
    pub(super) fn new(users: BTreeMap<String, serde_norway::Value>) -> Result<BasicAuth> {
        let mut out = Vec::with_capacity(users.len());
        let mut costliest: Option<(u32, &str)> = None;
        for (user, value) in users {
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() {
                return Err(bad("basic_auth_users", "a user name is empty"));
            }
            if user.contains(':') {
                return Err(bad(
                    &key,
                    "a user name cannot contain ':' in HTTP basic auth",
                ));
            }
            let serde_norway::Value::String(hash) = value else {
                return Err(bad(&key, "must be a bcrypt hash string"));
            };
            let cost = bcrypt_cost(&hash).ok_or_else(|| {
                bad(
                    &key,
                    "not a bcrypt hash (60 characters: $2a$, $2b$ or $2y$, a cost of 04-31, \
                     then salt and hash; make one with `htpasswd -nBC 10 USER`)",
                )
            })?;
            out.push((user, hash, cost));
        }
        for (_, hash, cost) in &out {
            if costliest.is_none_or(|(c, _)| *cost > c) {
                costliest = Some((*cost, hash));
            }
        }
        // `$2b$10$` and 22 characters of salt, then 31 of hash: '.' is 0 in bcrypt's base64.
        let decoy = match costliest {
            Some((_, hash)) => format!("{}{}", &hash[..29], ".".repeat(31)),
            None => return Err(bad("basic_auth_users", "no users")),
        };
        let out = out.into_iter().map(|(u, h, _)| (u, h)).collect();
        let rng = ring::rand::SystemRandom::new();
        let cache_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .map_err(|_| bad("basic_auth_users", "no randomness for the credential cache"))?;
        Ok(BasicAuth {
            users: out,
            decoy,
            cache_key,
            cache: Mutex::new(HashSet::new()),
            gate: tokio::sync::Semaphore::new(1),
            bcrypt_runs: AtomicU64::new(0),
        })
    }

    /// How many bcrypt verifications have run (the cache keeps this low).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// Whether an `Authorization` header value names a user with the right password.
    pub async fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, pass)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let stored = self.lookup(&user);
        let hash = stored.unwrap_or(&self.decoy);
        let tag = self.tag(&user, hash, &pass);
        if stored.is_some() && self.lock_cache().contains(&tag) {
            return true;
        }
        let verified = {
            let _permit = self.gate.acquire().await;
            self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            let hash = hash.to_string();
            tokio::task::spawn_blocking(move || bcrypt::verify(&pass, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let ok = verified && stored.is_some();
        if ok {
            let mut cache = self.lock_cache();
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(tag);
        }
        ok
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's hash, comparing every name without stopping early.
    fn lookup(&self, user: &[u8]) -> Option<&str> {
        let mut found = None;
        for (u, h) in &self.users {
            if ct_eq(u.as_bytes(), user) {
                found = Some(h.as_str());
            }
        }
        found
    }

    fn tag(&self, user: &[u8], hash: &str, pass: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.cache_key);
        for part in [user, hash.as_bytes(), pass] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// Equal bytes, in time that depends on the length only.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `Basic base64(user:password)` into its two parts.
fn parse_basic(v: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The cost of a well-formed `$2a$`/`$2b$`/`$2y$` hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let b = hash.as_bytes();
    if b.len() != 60 || !hash.is_ascii() || !matches!(&hash[..4], "$2a$" | "$2b$" | "$2y$") {
        return None;
    }
    if b[6] != b'$' || !b[4].is_ascii_digit() || !b[5].is_ascii_digit() {
        return None;
    }
    let cost: u32 = hash[4..6].parse().ok()?;
    if !(4..=31).contains(&cost) {
        return None;
    }
    hash.parse::<bcrypt::HashParts>().ok()?;
    Some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> Vec<u8> {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {enc}").into_bytes()
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic(&header("a", "b:c")),
            Some((b"a".to_vec(), b"b:c".to_vec()))
        );
        assert_eq!(
            parse_basic(b"basic YTpi"),
            Some((b"a".to_vec(), b"b".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer YTpi"), None);
        assert_eq!(parse_basic(b"Basic !!"), None);
        assert_eq!(parse_basic(b"Basic YWI="), None); // "ab": no colon
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
