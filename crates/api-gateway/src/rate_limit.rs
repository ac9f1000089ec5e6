//! Rate limits: a GCRA budget per client and route class, shared by every
//! gateway instance through Redis.
//!
//! A client is its verified token subject when it has one, else its address
//! ([`client_key`]); a route class is bookings (`POST /api/v1/reservations`,
//! tight: each one holds seats), other writes, or reads ([`RouteClass`]).
//! Each (class, client) pair is one Redis key holding its GCRA "theoretical
//! arrival time"; one Lua script ([`SCRIPT`]) reads it, decides on Redis's
//! own clock (`TIME`, so instances with skewed clocks agree), moves it and
//! sets its expiry to the moment the budget is whole again (`PEXPIRE`):
//! a client that stops sending leaves no key behind.
//!
//! The script is called by its SHA1 ([`events::lua::Script`]) on a
//! multiplexed connection each worker keeps for itself, with a short
//! response timeout. A worker has at most one call in flight per key: the
//! requests of that client and class that arrive meanwhile wait for it to
//! answer and are then decided together, by one call that counts them all
//! ([`Batches`]). Each is still decided by the shared budget, in arrival
//! order, so a client's burst costs a round trip per batch, not per request.
//! When Redis does not answer in time, is unreachable, or the connection
//! broke, the decision is taken by a local limiter instead
//! (governor, the same quotas, per gateway instance), counted in
//! `gateway_rate_limit_fallback_total` and logged at most once every ten
//! seconds per worker; the connection is made again in the background, at
//! most once a second, so no request waits on a reconnect. The local
//! limiter's memory stays bounded under a flood of distinct clients: idle
//! keys are dropped every ten seconds (`retain_recent`), and past
//! [`LOCAL_MAX_CLIENTS`] clients per class between two sweeps, new ones
//! share one budget.
//!
//! Responses carry the IETF draft structured headers
//! (draft-ietf-httpapi-ratelimit-headers-08 and later):
//! `RateLimit-Policy: "<class>";q=<requests>;w=<window seconds>` and
//! `RateLimit: "<class>";r=<remaining>;t=<seconds until the budget is whole>`;
//! a refusal is a 429 problem with `Retry-After` too.

use crate::settings::{GatewaySettings, RateLimitSettings};
use anyhow::Context;
use events::lua::Script;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Gcra};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use service_kit::Problem;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The window the quotas are expressed in (`w` of `RateLimit-Policy`).
const WINDOW: Duration = Duration::from_secs(60);

/// How often the local limiter drops the clients whose budget is whole again.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Clients one class of the local limiter tracks at most between two sweeps;
/// past that, new clients share the budget of [`OVERFLOW_CLIENT`].
pub const LOCAL_MAX_CLIENTS: usize = 100_000;

/// The one client all clients past [`LOCAL_MAX_CLIENTS`] are counted as.
const OVERFLOW_CLIENT: &str = "overflow";

/// How often a broken Redis connection is made again, at most.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// How often a worker logs that it decides locally, at most.
const LOG_FALLBACK_EVERY: Duration = Duration::from_secs(10);

/// The GCRA step in Redis, for a batch of requests of one client. `KEYS[1]`:
/// the budget of one client in one class; `ARGV[1]`: the emission interval
/// (microseconds between two requests at the sustained rate); `ARGV[2]`: the
/// burst; `ARGV[3]`: how many requests arrived. They are allowed one after
/// the other while the budget lasts. Returns `{allowed (how many of them),
/// microseconds from now to the theoretical arrival time before the batch}`,
/// from which [`Answer::decision`] makes each request's decision.
pub const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = 0
if tat - now <= tolerance then room = math.floor((tolerance - (tat - now)) / interval) + 1 end
local allowed = math.min(tonumber(ARGV[3]), room)
if allowed > 0 then
  local after = tat + allowed * interval
  redis.call('SET', KEYS[1], string.format('%.0f', after))
  redis.call('PEXPIRE', KEYS[1], math.ceil((after - now) / 1000))
end
return {allowed, tat - now}
";

/// How a batch was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// By the shared budget: what the script answered.
    Redis(Answer),
    /// By the local limiter, one request at a time: Redis was unavailable.
    Local,
}

/// What the script answered for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    /// How many of the batch's requests, the first ones, were allowed.
    allowed: u64,
    /// Microseconds from Redis's now to the theoretical arrival time before the batch.
    tat_micros: u64,
}

impl Answer {
    /// The decision for the batch's request at `index` (0 for the first to arrive).
    fn decision(self, policy: &Policy, index: usize) -> Decision {
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        let interval = policy.interval_micros;
        let tolerance = interval.saturating_mul(u64::from(policy.burst.saturating_sub(1)));
        let allowed = index < self.allowed;
        // The theoretical arrival time once this request (or, refused, the batch's last allowed one) counted.
        let counted = if allowed { index + 1 } else { self.allowed };
        let tat = self.tat_micros.saturating_add(counted.saturating_mul(interval));
        let (remaining, retry_after) = if allowed {
            ((tolerance + interval).saturating_sub(tat) / interval, 0)
        } else {
            (0, tat.saturating_sub(tolerance))
        };
        Decision {
            allowed,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_micros(tat),
            retry_after: Duration::from_micros(retry_after),
            source: Source::Redis,
            class: policy.class,
            policy: policy.header.clone(),
        }
    }
}

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The budgets requests are counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `POST /api/v1/reservations`: each booking holds seats.
    Booking,
    /// Any other method but GET, HEAD and OPTIONS.
    Write,
    /// GET, HEAD and OPTIONS.
    Read,
}

impl RouteClass {
    /// The class of a request with `method` on `path`.
    pub fn of(method: &Method, path: &str) -> Self {
        if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
            Self::Read
        } else if method == Method::POST && path.trim_end_matches('/') == "/api/v1/reservations" {
            Self::Booking
        } else {
            Self::Write
        }
    }

    /// Its name in headers, keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Booking => "booking",
            Self::Write => "write",
            Self::Read => "read",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Booking => 0,
            Self::Write => 1,
            Self::Read => 2,
        }
    }
}

/// Who a request is counted for: `sub:<subject>` for a verified token
/// subject, else `ip:<address>`. The prefixes keep a subject that looks like
/// an address from sharing that address's budget.
pub fn client_key(subject: Option<&str>, address: IpAddr) -> String {
    match subject {
        Some(subject) => format!("sub:{subject}"),
        None => format!("ip:{address}"),
    }
}

/// One class's quota.
#[derive(Debug)]
struct Policy {
    class: RouteClass,
    burst: u32,
    /// Microseconds between two requests at the sustained rate.
    interval_micros: u64,
    /// `RateLimit-Policy`, written once.
    header: HeaderValue,
}

impl Policy {
    fn new(class: RouteClass, per_minute: u32, burst: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            per_minute > 0 && burst > 0,
            "the {} rate limit needs a rate and a burst above 0",
            class.name()
        );
        let interval_micros = u64::try_from(WINDOW.as_micros()).unwrap_or(u64::MAX) / u64::from(per_minute);
        let header = HeaderValue::try_from(format!("\"{}\";q={per_minute};w={}", class.name(), WINDOW.as_secs()))?;
        Ok(Self { class, burst, interval_micros: interval_micros.max(1), header })
    }

    fn quota(&self) -> anyhow::Result<Quota> {
        let burst = NonZeroU32::new(self.burst).context("a burst of 0")?;
        let quota = Quota::with_period(Duration::from_micros(self.interval_micros)).context("an interval of 0")?;
        Ok(quota.allow_burst(burst))
    }
}

/// Where a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The shared budget in Redis.
    Redis,
    /// This instance's local limiter, Redis being unavailable.
    Local,
}

/// Whether one request may pass, and what its headers say.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The request may pass.
    pub allowed: bool,
    /// Requests the client may still send at once.
    pub remaining: u32,
    /// Until the client's budget is whole again.
    pub reset: Duration,
    /// Until the next request is allowed (zero when this one was).
    pub retry_after: Duration,
    /// Who decided.
    pub source: Source,
    class: RouteClass,
    policy: HeaderValue,
}

impl Decision {
    /// Adds `RateLimit-Policy` and `RateLimit` to `headers`.
    pub fn decorate(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
        let state = format!("\"{}\";r={};t={}", self.class.name(), self.remaining, whole_seconds(self.reset));
        if let Ok(value) = HeaderValue::try_from(state) {
            headers.insert(RATELIMIT.clone(), value);
        }
    }

    /// The 429 problem of a refused request, with `Retry-After` and both rate-limit headers.
    pub fn refusal(&self) -> axum::response::Response {
        let seconds = whole_seconds(self.retry_after).max(1);
        let what = match self.class {
            RouteClass::Booking => "bookings",
            RouteClass::Write => "changes",
            RouteClass::Read => "requests",
        };
        let problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many {what} from this client; retry in {seconds} s"),
        )
        .with_retry_after(u32::try_from(seconds).unwrap_or(u32::MAX));
        let mut response = axum::response::IntoResponse::into_response(problem);
        self.decorate(response.headers_mut());
        response
    }
}

/// Seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_micros().div_ceil(1_000_000).try_into().unwrap_or(u64::MAX)
}

type LocalGcra = Gcra<String, DashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The local limiters of one gateway instance, one per class, shared by its workers.
#[derive(Debug)]
pub struct LocalLimits {
    limiters: [LocalGcra; 3],
}

impl LocalLimits {
    /// Local limiters with the quotas of `settings`, swept every ten seconds
    /// by a task on the current runtime for as long as they are in use.
    ///
    /// # Errors
    /// A rate or burst is 0.
    pub fn new(settings: &RateLimitSettings) -> anyhow::Result<Arc<Self>> {
        let [booking, write, read] = policies(settings)?;
        let limiter = |policy: &Policy| policy.quota().map(|quota| Gcra::dashmap(quota).with_middleware());
        let limits = Arc::new(Self { limiters: [limiter(&booking)?, limiter(&write)?, limiter(&read)?] });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&limits)));
        }
        Ok(limits)
    }

    /// Clients tracked, over all classes.
    pub fn len(&self) -> usize {
        self.limiters.iter().map(LocalGcra::len).sum()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the clients whose budget is whole again.
    pub fn sweep(&self) {
        for limiter in &self.limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn decide(&self, policy: &Policy, client: &str) -> Decision {
        let limiter = &self.limiters[policy.class.index()];
        let key = if limiter.len() >= LOCAL_MAX_CLIENTS { OVERFLOW_CLIENT } else { client };
        let interval = Duration::from_micros(policy.interval_micros);
        let (allowed, remaining, reset, retry_after) = match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                (true, remaining, interval * policy.burst.saturating_sub(remaining), Duration::ZERO)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                (false, 0, wait + interval * policy.burst.saturating_sub(1), wait)
            }
        };
        Decision {
            allowed,
            remaining,
            reset,
            retry_after,
            source: Source::Local,
            class: policy.class,
            policy: policy.header.clone(),
        }
    }
}

async fn sweep(limits: Weak<LocalLimits>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(limits) = limits.upgrade() else { return };
        limits.sweep();
    }
}

fn policies(settings: &RateLimitSettings) -> anyhow::Result<[Policy; 3]> {
    Ok([
        Policy::new(RouteClass::Booking, settings.booking_per_minute, settings.booking_burst)?,
        Policy::new(RouteClass::Write, settings.write_per_minute, settings.write_burst)?,
        Policy::new(RouteClass::Read, settings.read_per_minute, settings.read_burst)?,
    ])
}

/// One worker's rate limiter: the shared budgets through its own Redis
/// connection, the instance's local limiters when Redis is unavailable.
#[derive(Debug)]
pub struct RateLimiter {
    policies: [Policy; 3],
    local: Arc<LocalLimits>,
    redis: Arc<RedisLink>,
    batches: Batches,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds after `started` of the last log of a local decision.
    logged_fallback: AtomicU64,
    /// Script calls made, each deciding one batch.
    calls: AtomicU64,
}

/// The requests waiting, per Redis key, for the call in flight on that key
/// to answer; they are decided together by the next call. A key is here
/// exactly while a call on it is in flight.
#[derive(Debug, Default)]
struct Batches(Mutex<HashMap<String, Vec<oneshot::Sender<Decision>>>>);

impl Batches {
    /// Joins the batch that waits for the call in flight on `key`, if there
    /// is one; if not, marks a call on `key` as in flight (the caller's).
    fn join(&self, key: &str) -> Option<oneshot::Receiver<Decision>> {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(batch) = waiting.get_mut(key) {
            let (sender, receiver) = oneshot::channel();
            batch.push(sender);
            return Some(receiver);
        }
        waiting.insert(key.to_owned(), Vec::new());
        None
    }

    /// The requests that arrived during the call on `key` that just ended;
    /// with none, `key` has no call in flight any more.
    fn next(&self, key: &str) -> Vec<oneshot::Sender<Decision>> {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match waiting.get_mut(key) {
            Some(batch) if !batch.is_empty() => std::mem::take(batch),
            _ => {
                waiting.remove(key);
                Vec::new()
            }
        }
    }
}

/// The request whose call is in flight on a key. However it ends (answered,
/// or dropped with its client gone), the requests that queued behind it are
/// sent on, by a task of their own.
struct Leading<'a> {
    limiter: &'a Arc<RateLimiter>,
    class: RouteClass,
    client: &'a str,
    key: String,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        let batch = self.limiter.batches.next(&self.key);
        if batch.is_empty() {
            return;
        }
        let (limiter, class, client, key) =
            (self.limiter.clone(), self.class, self.client.to_owned(), std::mem::take(&mut self.key));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { limiter.drain(class, &client, &key, batch).await });
        }
        // Without a runtime the batch's senders are dropped: each of its requests decides locally.
    }
}

impl RateLimiter {
    /// A limiter with the quotas and Redis of `settings`, deciding locally
    /// with `local` while Redis is unavailable. Starts connecting to Redis
    /// in the background.
    ///
    /// # Errors
    /// A rate or burst is 0, or the Redis settings do not make a URL.
    pub fn new(settings: &GatewaySettings, local: Arc<LocalLimits>) -> anyhow::Result<Self> {
        let limits = &settings.rate_limits;
        let timeout = Duration::from_millis(limits.redis_timeout_ms);
        let client = redis::Client::open(settings.redis_url()).context("parsing the Redis settings")?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(timeout));
        let redis = Arc::new(RedisLink { client, config, state: Mutex::new(LinkState::default()) });
        redis.connection();
        Ok(Self {
            policies: policies(limits)?,
            local,
            redis,
            batches: Batches::default(),
            prefix: limits.key_prefix.clone(),
            timeout,
            started: Instant::now(),
            logged_fallback: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        })
    }

    /// Counts one request of `client` ([`client_key`]) in `class` and says
    /// whether it may pass: by the shared budget in Redis, or the local one
    /// when Redis does not answer within the timeout. A request that arrives
    /// while this worker's call for the same client and class is in flight
    /// waits for it, then goes in the next call with the others that did.
    pub async fn check(self: &Arc<Self>, class: RouteClass, client: &str) -> Decision {
        let key = format!("{}{}:{client}", self.prefix, class.name());
        if let Some(queued) = self.batches.join(&key) {
            // Answered within two timeouts: the call in flight's, then this batch's own.
            return match queued.await {
                Ok(decision) => decision,
                Err(_) => self.decision(self.fall_back(class, 1, "the batch was dropped"), class, client, 0),
            };
        }
        let leading = Leading { limiter: self, class, client, key };
        let verdict = self.decide(class, &leading.key, 1).await;
        self.decision(verdict, class, client, 0)
    }

    /// Sends `batch` and then every batch that queues behind it on `key`, until none does.
    async fn drain(&self, class: RouteClass, client: &str, key: &str, mut batch: Vec<oneshot::Sender<Decision>>) {
        while !batch.is_empty() {
            let verdict = self.decide(class, key, batch.len()).await;
            for (index, request) in batch.drain(..).enumerate() {
                // A request whose client went away needs no answer.
                let _ = request.send(self.decision(verdict, class, client, index));
            }
            batch = self.batches.next(key);
        }
    }

    /// Decides `count` requests in `class` on Redis key `key` with one
    /// script call, or leaves them to the local limiter.
    async fn decide(&self, class: RouteClass, key: &str, count: usize) -> Verdict {
        let policy = &self.policies[class.index()];
        let Some(link) = self.redis.connection() else { return self.fall_back(class, count, "not connected") };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(self.timeout, run_script(link, key, policy, count)).await;
        let why = match answer.as_ref().map(|answer| answer.as_ref().map(Vec::as_slice)) {
            Ok(Ok(&[allowed, tat_micros])) => {
                let unsigned = |value: i64| u64::try_from(value).unwrap_or(0);
                return Verdict::Redis(Answer { allowed: unsigned(allowed), tat_micros: unsigned(tat_micros) });
            }
            Ok(Ok(other)) => format!("the script answered {other:?}"),
            Ok(Err(error)) => {
                if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
                    self.redis.broken();
                }
                error.to_string()
            }
            Err(_) => "no answer in time".to_owned(),
        };
        self.fall_back(class, count, &why)
    }

    /// Leaves `count` requests in `class` to the local limiter, logging (at most every ten seconds) and counting it.
    fn fall_back(&self, class: RouteClass, count: usize, why: &str) -> Verdict {
        self.log_fallback(why);
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        metrics::counter!("gateway_rate_limit_fallback_total", "class" => class.name()).increment(count);
        Verdict::Local
    }

    /// The decision for the request at `index` of a batch of `client`'s in `class` decided by `verdict`.
    fn decision(&self, verdict: Verdict, class: RouteClass, client: &str, index: usize) -> Decision {
        let policy = &self.policies[class.index()];
        match verdict {
            Verdict::Redis(answer) => answer.decision(policy, index),
            Verdict::Local => self.local.decide(policy, client),
        }
    }

    /// Script calls this worker has made so far; each decides every request
    /// of one client and class that arrived while the previous one was in flight.
    pub fn redis_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `up` while this worker has a Redis connection, else `down`.
    pub fn redis_state(&self) -> &'static str {
        if self.redis.is_connected() { "up" } else { "down" }
    }

    fn log_fallback(&self, why: &str) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.logged_fallback.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= u64::try_from(LOG_FALLBACK_EVERY.as_millis()).unwrap_or(0);
        if due && self.logged_fallback.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(why, "Redis is unavailable for rate limits; deciding with the local limiter");
        }
    }
}

/// [`SCRIPT`], sent by its SHA1.
static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(SCRIPT));

/// Runs [`SCRIPT`] on `key` with `policy`'s quota for `count` requests.
async fn run_script(
    mut connection: MultiplexedConnection,
    key: &str,
    policy: &Policy,
    count: usize,
) -> redis::RedisResult<Vec<i64>> {
    GCRA.run(&mut connection, |command| {
        command.arg(1).arg(key).arg(policy.interval_micros).arg(policy.burst).arg(count);
    })
    .await
}

/// A worker's connection to Redis, made again in the background after it broke.
#[derive(Debug)]
struct RedisLink {
    client: redis::Client,
    config: AsyncConnectionConfig,
    state: Mutex<LinkState>,
}

#[derive(Debug, Default)]
struct LinkState {
    connection: Option<MultiplexedConnection>,
    connecting: bool,
    last_attempt: Option<Instant>,
}

impl RedisLink {
    /// The connection if there is one; if not, starts making one (at most
    /// once a second) and returns `None` at once.
    fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(connection) = &state.connection {
            return Some(connection.clone());
        }
        let due = state.last_attempt.is_none_or(|last| last.elapsed() >= RECONNECT_EVERY);
        if !state.connecting
            && due
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            state.connecting = true;
            state.last_attempt = Some(Instant::now());
            let link = self.clone();
            runtime.spawn(async move {
                let made = link.client.get_multiplexed_async_connection_with_config(&link.config).await;
                let mut state = link.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.connecting = false;
                match made {
                    Ok(connection) => {
                        tracing::info!("connected to Redis for rate limits");
                        state.connection = Some(connection);
                    }
                    Err(error) => tracing::debug!(%error, "connecting to Redis for rate limits failed"),
                }
            });
        }
        None
    }

    fn broken(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).connection = None;
    }

    fn is_connected(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).connection.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_are_their_own_class_and_other_methods_are_writes_or_reads() {
        let class = |method: Method, path| RouteClass::of(&method, path);
        assert_eq!(class(Method::POST, "/api/v1/reservations"), RouteClass::Booking);
        assert_eq!(class(Method::POST, "/api/v1/reservations/"), RouteClass::Booking);
        assert_eq!(class(Method::PATCH, "/api/v1/reservations/7/confirm"), RouteClass::Write);
        assert_eq!(class(Method::POST, "/api/v1/menus"), RouteClass::Write);
        assert_eq!(class(Method::GET, "/api/v1/reservations"), RouteClass::Read);
        assert_eq!(class(Method::HEAD, "/api/v1/menus/1"), RouteClass::Read);
    }

    #[test]
    fn a_client_is_its_subject_when_it_has_one_and_its_address_otherwise() {
        let address = IpAddr::from([203, 0, 113, 7]);
        assert_eq!(client_key(Some("user-1"), address), "sub:user-1");
        assert_eq!(client_key(None, address), "ip:203.0.113.7");
        assert_ne!(client_key(Some("203.0.113.7"), address), client_key(None, address));
    }

    #[tokio::test]
    async fn the_local_limiter_forgets_clients_whose_budget_is_whole_again() -> anyhow::Result<()> {
        let settings = RateLimitSettings { read_per_minute: 60_000, read_burst: 1, ..RateLimitSettings::default() };
        let local = LocalLimits::new(&settings)?;
        let [_, _, read] = policies(&settings)?;
        for client in 0..1000 {
            assert!(local.decide(&read, &format!("ip:{client}")).allowed);
        }
        assert_eq!(local.len(), 1000);
        tokio::time::sleep(Duration::from_millis(5)).await;
        local.sweep();
        assert!(local.is_empty(), "{} clients still tracked", local.len());
        Ok(())
    }

    /// A limiter of `bookings` a minute (all at once) on the local Redis, connected.
    async fn connected_limiter(bookings: u32) -> anyhow::Result<Arc<RateLimiter>> {
        let settings = GatewaySettings {
            rate_limits: RateLimitSettings {
                rate_limit_enabled: true,
                booking_per_minute: bookings,
                booking_burst: bookings,
                key_prefix: testkit::unique("test-batches-"),
                redis_timeout_ms: 1_000,
                ..RateLimitSettings::default()
            },
            ..GatewaySettings::for_upstreams("http://127.0.0.1:9", "http://127.0.0.1:9")
        };
        let limiter = Arc::new(RateLimiter::new(&settings, LocalLimits::new(&settings.rate_limits)?)?);
        testkit::eventually(Duration::from_secs(5), "the limiter connects to Redis", || async {
            Ok(limiter.redis_state() == "up")
        })
        .await?;
        Ok(limiter)
    }

    #[tokio::test]
    async fn a_burst_of_one_clients_requests_takes_a_few_calls_and_gets_exactly_its_budget() -> anyhow::Result<()> {
        let limiter = connected_limiter(10).await?;
        let decisions =
            futures::future::join_all((0..50).map(|_| limiter.check(RouteClass::Booking, "sub:burst"))).await;
        let allowed: Vec<bool> = decisions.iter().map(|decision| decision.allowed).collect();
        assert_eq!(allowed, (0..50).map(|arrived| arrived < 10).collect::<Vec<_>>(), "the first ten pass");
        assert!(decisions.iter().all(|decision| decision.source == Source::Redis));
        let remaining: Vec<u32> = decisions[..10].iter().map(|decision| decision.remaining).collect();
        assert_eq!(remaining, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        let retry_after = decisions[10].retry_after.as_millis();
        assert!((5_000..=6_000).contains(&retry_after), "one request every 6 s: {:?}", decisions[10]);
        assert!(limiter.redis_calls() <= 2, "{} script calls for 50 requests", limiter.redis_calls());
        let later = limiter.check(RouteClass::Booking, "sub:burst").await;
        assert!(!later.allowed && later.source == Source::Redis, "the batches spent the shared budget: {later:?}");
        Ok(())
    }

    #[tokio::test]
    async fn requests_queued_behind_a_request_whose_client_left_are_still_decided_by_redis() -> anyhow::Result<()> {
        let limiter = connected_limiter(10).await?;
        let mut leaving = Box::pin(limiter.check(RouteClass::Booking, "sub:leaving"));
        assert!(futures::poll!(&mut leaving).is_pending(), "the first request waits for Redis");
        let mut queued = Box::pin(limiter.check(RouteClass::Booking, "sub:leaving"));
        assert!(futures::poll!(&mut queued).is_pending(), "the second waits behind it");
        drop(leaving);
        let decided = tokio::time::timeout(Duration::from_secs(2), queued).await?;
        assert!(decided.allowed && decided.source == Source::Redis, "{decided:?}");
        Ok(())
    }

    #[test]
    fn the_policy_header_names_the_class_quota_and_window() -> anyhow::Result<()> {
        let policy = Policy::new(RouteClass::Booking, 10, 5)?;
        assert_eq!(policy.header, "\"booking\";q=10;w=60");
        assert_eq!(policy.interval_micros, 6_000_000);
        Ok(())
    }
}
