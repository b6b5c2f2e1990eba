//! Who may call a route, and how often: API keys and rate limits.
//!
//! Keys come from a file (`WASMHOUSE_API_KEYS_FILE`) or the environment
//! (`WASMHOUSE_API_KEYS`) and are kept only as SHA-256 hashes; a presented
//! key is hashed and looked up by its hash, so neither the keys nor the
//! timing of a comparison give anything away, and no key is ever logged.
//! A route that requires a key (manifest `api_key = true`) answers 401
//! without one and 403 for a key limited to other routes.
//!
//! Rate limits are token buckets (`governor`), per route, per key and per
//! client address; over the limit a request gets 429 with `Retry-After` and
//! the `RateLimit-*` headers. The client address is the socket's, or the
//! first untrusted one in `X-Forwarded-For` when the socket is a trusted
//! proxy (`WASMHOUSE_TRUSTED_PROXIES`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use hyper::header::HeaderValue;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why the key store cannot be used; names the file or variable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// The keys file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key entry is wrong.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file or variable.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// One API key, as the host keeps it.
#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    /// Its name, for logs and metrics (never the key).
    pub(crate) name: String,
    /// The routes it may call; every route when `None`.
    pub(crate) routes: Option<Vec<String>>,
    /// Parameter values it fixes (`params = { tenant = "acme" }`), as the
    /// `wasmhouse-key-params` header its requests carry to the guest.
    pub(crate) params: Option<HeaderValue>,
}

/// The keys file: `[[key]]` entries with a `name`, the key's `sha256` (hex)
/// or the key itself as `key`, and optionally the `routes` it may call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default, rename = "key")]
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    sha256: Option<String>,
    key: Option<String>,
    routes: Option<Vec<String>>,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// Known keys by the SHA-256 of the key.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyStore {
    by_hash: HashMap<[u8; 32], ApiKey>,
}

/// Where keys come from, to read them again on reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySource {
    /// A TOML keys file.
    pub(crate) file: Option<PathBuf>,
    /// `name=key` pairs, comma-separated (`WASMHOUSE_API_KEYS`).
    pub(crate) inline: Option<String>,
}

impl KeySource {
    /// Read the keys now.
    pub(crate) fn load(&self) -> Result<KeyStore, AccessError> {
        let mut store = KeyStore::default();
        if let Some(path) = &self.file {
            store.add_file(path)?;
        }
        if let Some(pairs) = &self.inline {
            store.add_pairs(pairs)?;
        }
        Ok(store)
    }
}

impl KeyStore {
    fn add_file(&mut self, path: &Path) -> Result<(), AccessError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: origin.clone(),
            source,
        })?;
        let file: KeysFile = toml::from_str(&text).map_err(|err| AccessError::Invalid {
            origin: origin.clone(),
            message: err.to_string(),
        })?;
        for entry in file.keys {
            let invalid = |message: String| AccessError::Invalid {
                origin: origin.clone(),
                message,
            };
            let hash = match (&entry.sha256, &entry.key) {
                (Some(hex), None) => parse_hex_hash(hex).ok_or_else(|| {
                    invalid(format!(
                        "key {:?}: sha256 must be 64 hex digits",
                        entry.name
                    ))
                })?,
                (None, Some(key)) => hash_key(key),
                _ => {
                    return Err(invalid(format!(
                        "key {:?}: give exactly one of sha256 and key",
                        entry.name
                    )));
                }
            };
            let params = key_params(&entry.params).ok_or_else(|| {
                invalid(format!(
                    "key {:?}: params names and values must be plain text (no control characters)",
                    entry.name
                ))
            })?;
            self.insert(hash, entry.name, entry.routes, params, &origin)?;
        }
        Ok(())
    }

    fn add_pairs(&mut self, pairs: &str) -> Result<(), AccessError> {
        let origin = "WASMHOUSE_API_KEYS".to_owned();
        for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, key)) = pair.split_once('=') else {
                return Err(AccessError::Invalid {
                    origin,
                    message: "use name=key pairs separated by commas".into(),
                });
            };
            self.insert(
                hash_key(key.trim()),
                name.trim().to_owned(),
                None,
                None,
                &origin,
            )?;
        }
        Ok(())
    }

    fn insert(
        &mut self,
        hash: [u8; 32],
        name: String,
        routes: Option<Vec<String>>,
        params: Option<HeaderValue>,
        origin: &str,
    ) -> Result<(), AccessError> {
        if name.is_empty() || name.len() > 64 {
            return Err(AccessError::Invalid {
                origin: origin.to_owned(),
                message: "a key needs a name of 1 to 64 characters".into(),
            });
        }
        if self.by_hash.contains_key(&hash) {
            return Err(AccessError::Invalid {
                origin: origin.to_owned(),
                message: format!("key {name:?} is the same key as another entry"),
            });
        }
        self.by_hash.insert(
            hash,
            ApiKey {
                name,
                routes,
                params,
            },
        );
        Ok(())
    }

    /// How many keys are known.
    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no key is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The key `presented` is, if any.
    pub(crate) fn find(&self, presented: &str) -> Option<&ApiKey> {
        self.by_hash.get(&hash_key(presented))
    }

    /// Whether a header value carries one of these keys, in any of the
    /// forms a client sends credentials in: the whole value (`X-API-Key`, or
    /// any header), the credentials after an authentication scheme of any
    /// name and case (`Bearer`, `Token`, …), and a `Basic` pair's user name,
    /// password or both. Keys are known by their hash only, so these are the
    /// candidates hashed: one to four per header.
    pub(crate) fn carries(&self, value: &HeaderValue) -> bool {
        if self.by_hash.is_empty() {
            return false;
        }
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            return false;
        };
        let known = |candidate: &str| {
            !candidate.is_empty() && self.by_hash.contains_key(&hash_key(candidate))
        };
        let text = text.trim();
        if known(text) {
            return true;
        }
        let Some((scheme, credentials)) = text.split_once([' ', '\t']) else {
            return false;
        };
        let credentials = credentials.trim();
        if known(credentials) {
            return true;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        use base64::Engine as _;
        let Some(pair) = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        else {
            return false;
        };
        known(&pair)
            || pair
                .split_once(':')
                .is_some_and(|(user, password)| known(user) || known(password))
    }
}

/// A key's fixed parameters as one header value, form-encoded (`None`
/// inside when it fixes none); `None` when a name or value cannot travel.
fn key_params(params: &BTreeMap<String, String>) -> Option<Option<HeaderValue>> {
    if params.is_empty() {
        return Some(None);
    }
    let plain = |text: &str| !text.chars().any(char::is_control);
    if !params
        .iter()
        .all(|(k, v)| !k.is_empty() && plain(k) && plain(v))
    {
        return None;
    }
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    HeaderValue::from_str(&encoded).ok().map(Some)
}

fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_hex_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (at, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(at * 2..at * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The key a request presents: `Authorization: Bearer …` or `X-API-Key`.
pub(crate) fn presented_key(headers: &hyper::HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    crate::credentials::bearer_token(headers)
}

/// The header a guest learns the calling key's name from (the key itself
/// never reaches a guest).
pub(crate) const KEY_NAME_HEADER: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("wasmhouse-api-key");

/// The parameter values the presented key fixes, form-encoded, for the guest
/// (the SQL route component reads its `from_key` parameters here). Only the
/// host sets it: one a client sends is removed.
pub(crate) const KEY_PARAMS_HEADER: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("wasmhouse-key-params");

/// Remove what only the host should read before a request goes to a guest,
/// on every route, keyed or not: every header that carries one of `keys`
/// (see [`KeyStore::carries`]), whether or not this route looked for one; on
/// a route that admitted a key (`presented`), its `X-API-Key` and bearer
/// `Authorization` whatever they hold; and any `wasmhouse-api-key` or
/// `wasmhouse-key-params` a client made up.
pub(crate) fn strip_keys(headers: &mut hyper::HeaderMap, keys: &KeyStore, presented: bool) {
    headers.remove(KEY_NAME_HEADER);
    headers.remove(KEY_PARAMS_HEADER);
    if presented {
        headers.remove("x-api-key");
        if crate::credentials::bearer_token(headers).is_some() {
            headers.remove(hyper::header::AUTHORIZATION);
        }
    }
    if !keys.is_empty() {
        crate::credentials::strip_headers_where(headers, |value| keys.carries(value));
    }
}

/// A rate: so many requests per period, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Requests allowed per `per`.
    pub(crate) requests: NonZeroU32,
    /// The period.
    pub(crate) per: Duration,
    /// Requests that may come at once.
    pub(crate) burst: NonZeroU32,
}

/// A rate that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {why}")]
pub(crate) struct RateError {
    /// The rate as written.
    pub(crate) text: String,
    /// What is wrong with it.
    pub(crate) why: RateProblem,
}

/// What is wrong with a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RateProblem {
    /// No `/`.
    #[error("not a rate like 100/s")]
    Shape,
    /// The count is not a number.
    #[error("the count is not a number of requests")]
    Count,
    /// The count is 0.
    #[error("the count must be at least 1")]
    Zero,
    /// Not `s`, `min` or `h`.
    #[error("the unit is not s, min or h")]
    Unit,
    /// The burst is 0.
    #[error("the burst must be at least 1")]
    Burst,
}

impl Rate {
    /// Parse `100/s`, `20/min`, `5000/h` (burst = the count, unless given).
    pub(crate) fn parse(text: &str, burst: Option<u32>) -> Result<Self, RateError> {
        let bad = |why: RateProblem| RateError {
            text: text.to_owned(),
            why,
        };
        let (count, unit) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| bad(RateProblem::Shape))?;
        let requests: u32 = count.trim().parse().map_err(|_| bad(RateProblem::Count))?;
        let requests = NonZeroU32::new(requests).ok_or_else(|| bad(RateProblem::Zero))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad(RateProblem::Unit)),
        };
        let burst = match burst {
            Some(burst) => NonZeroU32::new(burst).ok_or_else(|| bad(RateProblem::Burst))?,
            None => requests,
        };
        Ok(Self {
            requests,
            per,
            burst,
        })
    }

    fn quota(self) -> Quota {
        let replenish = self.per / self.requests.get();
        Quota::with_period(replenish.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.requests))
            .allow_burst(self.burst)
    }
}

type Governor<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// Checks between two prunings of a limiter's state.
const PRUNE_EVERY: u64 = 1024;

/// A keyed rate limiter whose state stays bounded: every [`PRUNE_EVERY`]
/// checks it forgets the keys whose buckets have been full again for a
/// refill time (a key that comes back then starts from a full bucket, as it
/// would have anyway), so it holds only the keys seen within about two
/// refill times, not every client address that ever called.
struct Limiter<K: std::hash::Hash + Eq + Clone> {
    governor: Governor<K>,
    checks: std::sync::atomic::AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    fn new(rate: Rate) -> Self {
        Self {
            governor: RateLimiter::keyed(rate.quota()).with_middleware(),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Take one request from `key`'s bucket.
    fn check_key(
        &self,
        key: &K,
    ) -> Result<
        governor::middleware::StateSnapshot,
        governor::NotUntil<<DefaultClock as governor::clock::Clock>::Instant>,
    > {
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.governor.retain_recent();
            self.governor.shrink_to_fit();
        }
        self.governor.check_key(key)
    }

    /// How many keys it holds state for.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.governor.len()
    }
}

/// A route's rules: whether a key is needed, and its rate limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccessRules {
    /// Requests must present a known key allowed on the route.
    pub(crate) api_key: bool,
    /// Most requests per key.
    pub(crate) per_key: Option<Rate>,
    /// Most requests per client address.
    pub(crate) per_client: Option<Rate>,
}

/// A route's access checks, with their rate limiters' state.
pub(crate) struct RouteAccess {
    rules: AccessRules,
    per_key: Option<(Rate, Limiter<String>)>,
    per_client: Option<(Rate, Limiter<IpAddr>)>,
}

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No key, or an unknown one.
    Unauthorized,
    /// A known key not allowed on this route.
    Forbidden,
    /// Over a rate limit.
    TooManyRequests {
        /// The limit, in requests per window.
        limit: u32,
        /// Seconds until a request is allowed again.
        retry_after: u64,
        /// The window, in seconds.
        window: u64,
    },
}

/// An allowed request: the key it presented (by name) and its rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Admission {
    /// The name of the known key presented, if any.
    pub(crate) key: Option<String>,
    /// The parameters that key fixes, as their header value.
    pub(crate) key_params: Option<HeaderValue>,
    /// The tightest rate limit it is under, if any.
    pub(crate) allowance: Option<Allowance>,
}

/// What an allowed request may tell its client about its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    /// The limit, in requests per window.
    pub(crate) limit: u32,
    /// Requests left now.
    pub(crate) remaining: u32,
    /// Seconds until the bucket is full again.
    pub(crate) reset: u64,
}

impl RouteAccess {
    /// The checks `rules` describe, with fresh buckets.
    pub(crate) fn new(rules: AccessRules) -> Self {
        Self {
            per_key: rules.per_key.map(|rate| (rate, Limiter::new(rate))),
            per_client: rules.per_client.map(|rate| (rate, Limiter::new(rate))),
            rules,
        }
    }

    /// The rules checked.
    pub(crate) fn rules(&self) -> &AccessRules {
        &self.rules
    }

    /// Whether the route asks for an API key.
    pub(crate) fn needs_key(&self) -> bool {
        self.rules.api_key
    }

    /// Whether the route checks anything at all (most do not: no work then).
    pub(crate) fn is_open(&self) -> bool {
        !self.rules.api_key && self.per_key.is_none() && self.per_client.is_none()
    }

    /// Check a request to route `route` presenting `key`, from `client`.
    pub(crate) fn check(
        &self,
        route: &str,
        keys: &KeyStore,
        key: Option<&str>,
        client: IpAddr,
    ) -> Result<Admission, Denied> {
        let known = key.and_then(|key| keys.find(key));
        if self.rules.api_key {
            let Some(known) = known else {
                return Err(Denied::Unauthorized);
            };
            if let Some(routes) = &known.routes
                && !routes.iter().any(|allowed| allowed == route)
            {
                return Err(Denied::Forbidden);
            }
        }
        let mut tightest: Option<Allowance> = None;
        if let Some((rate, limiter)) = &self.per_key {
            // Unkeyed requests on a keyed limit share one bucket.
            let bucket = known.map_or_else(String::new, |known| known.name.clone());
            tightest = tighter(tightest, check(limiter, &bucket, *rate)?);
        }
        if let Some((rate, limiter)) = &self.per_client {
            tightest = tighter(tightest, check(limiter, &client_bucket(client), *rate)?);
        }
        Ok(Admission {
            key: known.map(|known| known.name.clone()),
            key_params: known.and_then(|known| known.params.clone()),
            allowance: tightest,
        })
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    rate: Rate,
) -> Result<Allowance, Denied> {
    let window = rate.per.as_secs().max(1);
    match limiter.check_key(key) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            let refill = rate.per / rate.requests.get() * (rate.burst.get() - remaining);
            Ok(Allowance {
                limit: rate.requests.get(),
                remaining,
                reset: ceil_seconds(refill),
            })
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Err(Denied::TooManyRequests {
                limit: rate.requests.get(),
                retry_after: ceil_seconds(wait).max(1),
                window,
            })
        }
    }
}

/// The bucket a client address counts against: the address itself for IPv4,
/// its /64 network for IPv6, since one subscriber commonly holds a whole /64
/// (every address of it would otherwise get a bucket of its own, and the
/// limiter's state one entry per address it makes up).
fn client_bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(network))
        }
    }
}

/// `duration` in whole seconds, rounded up (0 only for no time at all).
fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn tighter(current: Option<Allowance>, next: Allowance) -> Option<Allowance> {
    match current {
        Some(current) if current.remaining <= next.remaining => Some(current),
        _ => Some(next),
    }
}

/// Proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    networks: Vec<ipnet::IpNet>,
}

impl TrustedProxies {
    /// Parse `127.0.0.1, 10.0.0.0/8` (addresses or networks).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let network = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{item:?} is not an address or a network like 10.0.0.0/8"))?;
            networks.push(network);
        }
        Ok(Self { networks })
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|network| network.contains(&address))
    }

    /// The client behind `peer`: `peer` itself, unless it is a trusted
    /// proxy; then the last address in `X-Forwarded-For` that is not one.
    pub(crate) fn client(&self, peer: IpAddr, headers: &hyper::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|address| address.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|address| !self.trusts(*address))
            .unwrap_or(peer)
    }
}

/// The shared parts of access control: the keys (swapped on reload) and the
/// trusted proxies.
pub(crate) struct Access {
    keys: arc_swap::ArcSwap<KeyStore>,
    source: KeySource,
    proxies: TrustedProxies,
}

impl Access {
    /// Load the keys from `source`.
    pub(crate) fn new(source: KeySource, proxies: TrustedProxies) -> Result<Self, AccessError> {
        let keys = source.load()?;
        Ok(Self {
            keys: arc_swap::ArcSwap::from_pointee(keys),
            source,
            proxies,
        })
    }

    /// Read the keys again (with the manifest, on reload).
    pub(crate) fn reload(&self) -> Result<usize, AccessError> {
        let keys = self.source.load()?;
        let count = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// The keys in force.
    pub(crate) fn keys(&self) -> arc_swap::Guard<Arc<KeyStore>> {
        self.keys.load()
    }

    /// The trusted proxies.
    pub(crate) fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_keys_file_loads() {
        let source = KeySource {
            file: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../deploy/keys.example.toml"),
            ),
            inline: None,
        };
        let keys = source.load().expect("deploy/keys.example.toml loads");
        assert_eq!(keys.len(), 2);
        let dashboard = keys.find("test").expect("the hash of \"test\"");
        assert_eq!(dashboard.name, "dashboard");
        assert!(dashboard.routes.is_none());
        let partner = keys.find("acme-example-key").expect("the partner's key");
        assert_eq!(partner.routes.as_deref(), Some(&["reports".to_owned()][..]));
        assert!(keys.find("wrong").is_none());
    }

    fn keys(pairs: &str) -> KeyStore {
        KeySource {
            file: None,
            inline: Some(pairs.into()),
        }
        .load()
        .expect("keys")
    }

    #[test]
    fn keys_are_found_by_hash_only() {
        let store = keys("ops=s3cret, ci = other");
        assert_eq!(store.find("s3cret").map(|k| k.name.as_str()), Some("ops"));
        assert_eq!(store.find("other").map(|k| k.name.as_str()), Some("ci"));
        assert!(store.find("S3cret").is_none());
        assert!(
            format!("{store:?}").find("s3cret").is_none(),
            "a key is kept in the clear"
        );
    }

    #[test]
    fn a_key_is_seen_in_every_form_credentials_come_in() {
        use base64::Engine as _;
        let store = keys("ops=s3cret-key");
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        for value in [
            "s3cret-key".to_owned(),
            "  s3cret-key ".to_owned(),
            "Bearer s3cret-key".to_owned(),
            "bearer\ts3cret-key".to_owned(),
            "Token   s3cret-key".to_owned(),
            basic("user:s3cret-key"),
            basic("s3cret-key:"),
            basic("s3cret-key"),
        ] {
            let value = HeaderValue::from_str(&value).expect("header value");
            assert!(store.carries(&value), "{value:?}");
        }
        for value in [
            "s3cret-keys",
            "Bearer s3cret-key2",
            "Bearer other",
            "S3CRET-KEY",
            "Basic !!!",
        ] {
            assert!(!store.carries(&HeaderValue::from_static(value)), "{value}");
        }
        assert!(!KeyStore::default().carries(&HeaderValue::from_static("s3cret-key")));
    }

    #[test]
    fn keys_are_stripped_from_every_header_on_every_route() {
        let store = keys("ops=s3cret-key");
        let mut headers = hyper::HeaderMap::new();
        headers.append("x-api-key", HeaderValue::from_static("junk"));
        headers.append("x-api-key", HeaderValue::from_static("s3cret-key"));
        headers.insert("x-other", HeaderValue::from_static("Bearer s3cret-key"));
        headers.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer the-guests-own"),
        );
        headers.insert(KEY_NAME_HEADER, HeaderValue::from_static("admin"));
        strip_keys(&mut headers, &store, false);
        assert!(!headers.contains_key("x-api-key"));
        assert!(!headers.contains_key("x-other"));
        assert!(!headers.contains_key(KEY_NAME_HEADER));
        assert_eq!(
            headers[hyper::header::AUTHORIZATION],
            "Bearer the-guests-own"
        );
    }

    #[test]
    fn a_limiter_forgets_clients_whose_buckets_are_full_again() {
        // One request per second: a bucket is full again a second after its
        // request, and the limiter forgets it a second after that (its
        // margin).
        let rate = Rate {
            requests: NonZeroU32::new(1).expect("non-zero"),
            per: Duration::from_secs(1),
            burst: NonZeroU32::new(1).expect("non-zero"),
        };
        let limiter = Limiter::<IpAddr>::new(rate);
        let started = std::time::Instant::now();
        for i in 0..5_000u32 {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(limiter.check_key(&client).is_ok());
        }
        if started.elapsed() < Duration::from_millis(900) {
            // Pruned along the way, but none was full again yet.
            assert_eq!(limiter.tracked(), 5_000);
        }
        std::thread::sleep(Duration::from_millis(2100));
        let one = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        for _ in 0..PRUNE_EVERY {
            let _ = limiter.check_key(&one);
        }
        assert!(
            limiter.tracked() <= 1,
            "{} clients still tracked",
            limiter.tracked()
        );
    }

    #[test]
    fn ipv6_clients_share_their_64_bucket() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(client_bucket(a), client_bucket(b));
        assert_ne!(client_bucket(a), client_bucket(c));
        let v4: IpAddr = "192.0.2.7".parse().expect("v4");
        assert_eq!(client_bucket(v4), v4);
    }

    #[test]
    fn rates_parse() {
        let rate = Rate::parse("100/s", None).expect("rate");
        assert_eq!(
            (rate.requests.get(), rate.per, rate.burst.get()),
            (100, Duration::from_secs(1), 100)
        );
        assert_eq!(Rate::parse("5/min", Some(2)).expect("rate").burst.get(), 2);
        for bad in ["100", "0/s", "x/s", "5/day", "5/s"] {
            let burst = if bad == "5/s" { Some(0) } else { None };
            assert!(Rate::parse(bad, burst).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_routes_decide() {
        let store = keys("ops=a");
        let mut limited = store.clone();
        limited
            .insert(
                hash_key("b"),
                "reports-only".into(),
                Some(vec!["reports".into()]),
                None,
                "test",
            )
            .expect("insert");
        let access = RouteAccess::new(AccessRules {
            api_key: true,
            ..AccessRules::default()
        });
        let client: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            access.check("app", &limited, None, client),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            access.check("app", &limited, Some("nope"), client),
            Err(Denied::Unauthorized)
        );
        let admitted = |key: &str| Admission {
            key: Some(key.to_owned()),
            key_params: None,
            allowance: None,
        };
        assert_eq!(
            access.check("app", &limited, Some("a"), client),
            Ok(admitted("ops"))
        );
        assert_eq!(
            access.check("app", &limited, Some("b"), client),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            access.check("reports", &limited, Some("b"), client),
            Ok(admitted("reports-only"))
        );
    }

    #[test]
    fn rate_limits_count_per_key() {
        let store = keys("one=1,two=2");
        let access = RouteAccess::new(AccessRules {
            api_key: true,
            per_key: Some(Rate::parse("3/min", None).expect("rate")),
            per_client: None,
        });
        let client: IpAddr = "127.0.0.1".parse().expect("ip");
        for remaining in [2, 1, 0] {
            let allowed = access
                .check("r", &store, Some("1"), client)
                .expect("allowed");
            assert_eq!(allowed.allowance.map(|a| a.remaining), Some(remaining));
        }
        assert!(matches!(
            access.check("r", &store, Some("1"), client),
            Err(Denied::TooManyRequests {
                limit: 3,
                window: 60,
                ..
            })
        ));
        assert!(
            access.check("r", &store, Some("2"), client).is_ok(),
            "keys share a bucket"
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").expect("proxies");
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 10.1.2.3".parse().expect("header"),
        );
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(
            proxies.client(proxy, &headers),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(proxies.client(stranger, &headers), stranger);
        assert!(TrustedProxies::parse("nope").is_err());
    }
}
