//! A registry of named instances built from one configuration document (feature
//! `config`): rate limiters, circuit breakers, retry settings, retry budgets, bulkheads,
//! hedges and fallbacks, handed out by name as shared handles (and, with feature `tower`,
//! as tower layers), pipelines composed of them, and reloaded in place from a changed
//! document.
//!
//! # The document
//!
//! TOML, one table per section and one table per instance in it, each instance's fields
//! those of core's configuration type (read with core's feature `serde`, so checked with
//! core's words and durations written as `"250ms"`, `"1m30s"`):
//!
//! | Section | An instance is | Its fields | Handed out as |
//! |---|---|---|---|
//! | `rate_limit` | a [`TokenBucket`] (GCRA) | [`Quota`]'s: `burst`, `period` | [`NamedRateLimiter`] behind `Arc` |
//! | `breaker` | a [`CircuitBreaker`] over an [`AnyWindow`] | [`BreakerConfig`]'s, and `window` ([`BreakerWindow`]) | [`NamedBreaker`] behind `Arc` |
//! | `retry` | the settings of each operation's [`RetryPolicy`] | [`RetrySettings`]' | [`NamedRetry`] behind `Arc` |
//! | `bulkhead` | a [`Bulkhead`] | [`BulkheadSettings`]': `max_concurrent` | [`NamedBulkhead`] behind `Arc` |
//! | `retry_budget` | a [`TokenBudget`] (gRPC's retry throttling), drawn on by the retry settings and the hedges that name it (`budget = "NAME"` in a `retry` or `hedge` instance) | [`TokenBudgetSettings`]': `max_tokens`, `token_ratio` | [`NamedRetryBudget`] behind `Arc` |
//! | `hedge` | core's [`Hedge`] run by [`Hedging`] (another attempt of a slow call, for idempotent calls only), drawing its hedges from the retry budget it names (`budget = "NAME"`), if any | [`HedgeConfig`]'s: `delay` (fixed), or `per_mille`, `min_samples`, `window` (learned); `max_attempts` | [`NamedHedge`] behind `Arc` |
//! | `fallback` | which failures a fallback answers ([`FallbackOn`], by the layer that refused); the answer is the program's closure | `on`: `"refusals"`, `"everything"`, or a list of `overall_timeout`, `rate_limit`, `bulkhead`, `circuit_breaker`, `retry`, `throttle` | [`NamedFallback`] behind `Arc` |
//! | `pipeline` | a [`Pipeline`] of the instances above, in its order, each layer optional: the same live instances the other handles share, so a reload of a quota or of retry settings is seen by its next call, and the instances' metrics count its calls | `timeout` (the call's, overall), `rate_limit`, `bulkhead`, `breaker`, `retry` (each the name of an instance of that section), `attempt_timeout` | [`NamedPipeline`] behind `Arc` |
//!
//! ```toml
//! [rate_limit.api]
//! burst = 10
//! period = "100ms"            # one permit every 100 ms, 10 at once
//!
//! [breaker.downstream]
//! failure_rate_threshold = 50
//! minimum_calls = 20
//! open_duration = "30s"
//! window = { count = { size = 50 } }
//!
//! [retry.downstream]
//! max_attempts = 3
//! backoff = { exponential = { base = "50ms", factor = 2, cap = "1s", jitter = "full" } }
//!
//! [bulkhead.downstream]
//! max_concurrent = 64
//!
//! [hedge.search]
//! per_mille = 950             # hedge at the learned p95
//! max_attempts = 2
//!
//! [fallback.page]
//! on = ["circuit_breaker", "rate_limit"]
//!
//! [pipeline.downstream]
//! timeout = "5s"              # each call's, waits and retries included
//! rate_limit = "api"          # the [rate_limit.api] above
//! bulkhead = "downstream"
//! breaker = "downstream"
//! retry = "downstream"        # each call's policy from these settings (and their budget)
//! attempt_timeout = "1s"
//! ```
//!
//! **Environment variables** override single fields ([`Document::with_env`]):
//! `PREFIX__SECTION__NAME__FIELD`, as in
//! `STANCHION__BREAKER__DOWNSTREAM__FAILURE_RATE_THRESHOLD=60` or
//! `STANCHION__BREAKER__DOWNSTREAM__WINDOW__COUNT__SIZE=100`; the value is read as a TOML
//! value when it is one, otherwise as a string (`5s`).
//!
//! **Errors** ([`RegistryError`]) name where (file, line and column; or the environment
//! variable), which instance, which field, and why, with core's words for a value core
//! refuses:
//!
//! ```text
//! policies.toml:3:9: rate_limit `api`, field `burst`: invalid configuration: `burst` must be at least 1
//! ```
//!
//! # Reload
//!
//! [`Registry::reload`] applies a changed document to the live instances, all or nothing:
//!
//! | Change | Applied as |
//! |---|---|
//! | a rate limit's quota | [`TokenBucket::set_quota`]: the bucket keeps its state (its time debt) |
//! | a bulkhead's `max_concurrent` | [`Bulkhead::set_max_concurrent`]: permits out stay out |
//! | retry settings (and the budget they name) | the next operations' policies use the new settings |
//! | a retry budget's settings | [`TokenBudget::set_settings`]: the tokens left stay (down to a smaller `max_tokens`) |
//! | a breaker's `failure_rate_threshold`, `slow_call_rate_threshold`, `minimum_calls`, `max_wait_in_half_open` or `after_max_wait` | [`CircuitBreaker::reconfigure`]: the window keeps its calls and the breaker its state; the thresholds judge the next outcome recorded, the maximum wait the next half-open period |
//! | a new name | a new instance |
//! | a breaker's `slow_call_duration`, `permitted_calls_in_half_open`, `open_duration` or `window` | **refused**: core's [`CircuitBreaker`] reads the first two without its lock and takes the open duration into its backoff when built, so it cannot change them in place, and rebuilding it would lose its window and state |
//! | a hedge's settings or its budget | **refused**: core's [`Hedge`] cannot change them in place, and rebuilding it would lose its learned latencies |
//! | a fallback's `on` | **refused**: the tower layers handed out hold it |
//! | a pipeline's fields (its timeouts, or which instance a layer is) | **refused**: the pipeline handed out holds its layers, and handles to it may be in use; the instances it names change as above, and its next call sees them |
//! | a name left out | **refused**: handles to the instance may be in use |
//!
//! A refused change is an error naming the instance, the field and the reason, and then
//! nothing of the document is applied.
//!
//! # Metrics
//!
//! With feature `metrics`, every named instance reports through the
//! [`metrics`](https://docs.rs/metrics) facade, to whichever exporter the application
//! installs (Prometheus, OpenTelemetry, statsd). Every series carries the label `name`,
//! the instance's name; each is registered, at zero, when the instance is built, with
//! the recorder installed then: **install the exporter before building the registry**.
//!
//! | Name | Kind | Other labels | What |
//! |---|---|---|---|
//! | `stanchion_rate_limit_admitted_total` | counter | | requests a rate limiter granted |
//! | `stanchion_rate_limit_rejected_total` | counter | `reason`: `over_quota` (wait and retry), `above_burst` (more permits than the burst, never granted) | requests it refused |
//! | `stanchion_breaker_state` | gauge | `state`: `closed`, `open`, `half_open`, `disabled`, `forced_open`, `metrics_only` | 1 for the breaker's state, 0 for the others |
//! | `stanchion_breaker_rejected_total` | counter | `reason`: `open`, `half_open` (its trial calls all out), `forced_open` | calls a breaker refused |
//! | `stanchion_bulkhead_admitted_total` | counter | | permits a bulkhead granted |
//! | `stanchion_bulkhead_rejected_total` | counter | `reason`: `full` | permits it refused |
//! | `stanchion_bulkhead_in_use` | gauge | | permits out |
//! | `stanchion_bulkhead_max_concurrent` | gauge | | its maximum (a reload may change it) |
//! | `stanchion_retry_retries_total` | counter | | retries the policies of retry settings made (each attempt after the first) |
//! | `stanchion_retry_budget_tokens` | gauge | | tokens a retry budget has left (a retry is allowed while more than half are left after it) |
//! | `stanchion_hedge_hedges_total` | counter | | hedges a hedge started (attempts after the first) |
//! | `stanchion_fallback_answers_total` | counter | | failures a fallback answered (through `Registry::fallback_layer`, or counted by [`NamedFallback::answered`]) |
//!
//! Decisions taken on a rate limiter's bucket directly ([`NamedRateLimiter::limiter`])
//! are not counted; those through the handle (core's [`RateLimiter`], the awaitable
//! [`AsyncRateLimiter`], the tower layer, a [`NamedPipeline`]) are: a pipeline's calls
//! are counted by the instances it names, as any other caller's. A breaker's state gauge
//! follows its listener's transitions, which core reports after its critical section: two
//! transitions on two threads at once may be reported in either order, and the gauges
//! may then show 1 for two states until the next transition.
//!
//! # Example
//!
//! ```
//! use stanchion_std::registry::{Document, Registry};
//! use stanchion::rate::Quota;
//! use std::time::Duration;
//!
//! let text = r#"
//!     [rate_limit.api]
//!     burst = 10
//!     period = "100ms"
//!
//!     [breaker.downstream]
//!     failure_rate_threshold = 50
//!     window = { count = { size = 50 } }
//! "#;
//! let registry = Registry::new(&Document::parse("policies.toml", text)?)?;
//! let api = registry.rate_limiter("api").expect("configured");
//! assert_eq!(api.limiter().quota(), Quota::new(10, Duration::from_millis(100))?);
//!
//! // A higher quota is applied to the live bucket.
//! let raised = text.replace("burst = 10", "burst = 20");
//! registry.reload(&Document::parse("policies.toml", raised.clone())?)?;
//! assert_eq!(api.limiter().quota().burst(), 20);
//!
//! // A breaker's threshold changes in place: the live breaker keeps its window.
//! let downstream = registry.breaker("downstream").expect("configured");
//! let lowered = raised.replace("failure_rate_threshold = 50", "failure_rate_threshold = 30");
//! registry.reload(&Document::parse("policies.toml", lowered.clone())?)?;
//! assert_eq!(downstream.config().get_failure_rate_threshold(), 30);
//!
//! // Its window cannot: refused, and nothing applied.
//! let changed = lowered.replace("size = 50", "size = 100").replace("burst = 20", "burst = 10");
//! let err = registry.reload(&Document::parse("policies.toml", changed)?).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "policies.toml:8:14: breaker `downstream`, field `window`: cannot change a live \
//!      circuit breaker's window: the window is the breaker's state, which rebuilding it \
//!      would lose (restart to apply it)"
//! );
//! assert_eq!(api.limiter().quota().burst(), 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod document;
mod error;
mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use stanchion::breaker::window::AnyWindow;
use stanchion::breaker::{
    BreakerConfig, BreakerListener, CircuitBreaker, FixedOpenDuration, Rejected, State,
};
use stanchion::bulkhead::{Bulkhead, BulkheadFull, BulkheadListener};
use stanchion::config::duration::{self, DurationError};
use stanchion::config::{
    AnyBackoff, BreakerWindow, BulkheadSettings, RetrySettings, TokenBudgetSettings,
};
use stanchion::fallback::FallbackOn;
use stanchion::hedge::{Hedge, HedgeConfig};
use stanchion::pipeline::Layer;
use stanchion::rate::{Quota, RateLimitError, RateLimiter, TokenBucket};
use stanchion::retry::{MaxRetryAfter, RetryBudget, RetryPolicy, TokenBudget, TransientErrors};
use stanchion::{Clock, ConfigError, Instant};

use crate::fault::NoFaults;
use crate::hedge::Hedging;
use crate::{
    Admission, AsyncRateLimiter, ErrorsAreFailures, Pipeline, RateLimitQueue, StdRawMutex,
    TokioClock,
};
use report::{BreakerReport, BudgetReport, BulkheadReport, CountReport, RateLimitReport};

pub use document::Document;
pub use error::{Origin, RegistryError};

/// The sections of a document, in the order they are read.
const SECTIONS: [&str; 8] = [
    "rate_limit",
    "breaker",
    "retry",
    "bulkhead",
    "retry_budget",
    "hedge",
    "fallback",
    "pipeline",
];

/// A named rate limiter: a [`TokenBucket`] (GCRA) on the registry's clock, reporting its
/// decisions (feature `metrics`). Usable as it is with the tower rate limit layer and the
/// awaitable interface ([`AsyncRateLimiter`]), and as a core
/// [`RateLimiter`] given `now`; [`limiter`](Self::limiter) is the bucket.
#[derive(Debug)]
pub struct NamedRateLimiter<C = TokioClock> {
    bucket: TokenBucket,
    clock: C,
    report: RateLimitReport,
}

impl<C> NamedRateLimiter<C> {
    /// The bucket (its quota, its state); a decision taken on it directly is not
    /// reported.
    pub fn limiter(&self) -> &TokenBucket {
        &self.bucket
    }

    /// The clock its decisions read.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<C> RateLimiter for NamedRateLimiter<C> {
    #[inline]
    fn acquire_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        let decision = self.bucket.acquire_at(n, now);
        self.report.decision(&decision);
        decision
    }
    #[inline]
    fn peek_at(&self, n: u32, now: Instant) -> Result<(), RateLimitError> {
        self.bucket.peek_at(n, now)
    }
    fn remaining_at(&self, now: Instant) -> u32 {
        self.bucket.remaining_at(now)
    }
    fn max_acquire(&self) -> u32 {
        self.bucket.max_acquire()
    }
    fn reset(&self) {
        self.bucket.reset()
    }
}

impl<C: Clock + Send + Sync> AsyncRateLimiter for NamedRateLimiter<C> {
    fn admit(
        &self,
        n: u32,
    ) -> impl std::future::Future<Output = Result<Admission, RateLimitError>> + Send {
        std::future::ready(self.decide(n))
    }

    fn max_acquire(&self) -> u32 {
        self.bucket.max_acquire()
    }

    fn admit_now(&self, n: u32) -> Option<Result<Admission, RateLimitError>> {
        Some(self.decide(n))
    }

    fn acquire_now(&self, n: u32) -> Option<Result<(), RateLimitError>> {
        Some(self.acquire_at(n, self.clock.now()))
    }
}

impl<C: Clock> NamedRateLimiter<C> {
    fn decide(&self, n: u32) -> Result<Admission, RateLimitError> {
        let now = self.clock.now();
        self.acquire_at(n, now).map(|()| Admission {
            remaining: self.bucket.remaining_at(now),
        })
    }
}

/// A named circuit breaker: its window chosen by the document, up to capacity `CAP`.
pub type NamedBreaker<const CAP: usize = DEFAULT_CAP> =
    CircuitBreaker<AnyWindow<CAP>, StdRawMutex, FixedOpenDuration, BreakerEvents>;

/// A named bulkhead.
pub type NamedBulkhead = Bulkhead<BulkheadEvents>;

/// The window capacity of [`Registry`]'s breakers unless the program chooses another: a
/// count window of up to 128 calls, a time window of up to 128 buckets.
pub const DEFAULT_CAP: usize = 128;

/// What a named breaker reports its events to: with feature `metrics`, its gauges and
/// counters; otherwise nothing (and the breaker then collects no events).
#[derive(Debug)]
pub struct BreakerEvents {
    name: Arc<str>,
    report: BreakerReport,
}

impl BreakerEvents {
    fn new(name: &str) -> BreakerEvents {
        BreakerEvents {
            name: name.into(),
            report: BreakerReport::new(name),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl BreakerListener for BreakerEvents {
    #[inline]
    fn listens(&self) -> bool {
        report::LISTENS
    }

    fn on_state_transition(&self, from: State, to: State, _at: Instant) {
        self.report.transition(from, to);
    }

    fn on_rejected(&self, rejected: Rejected, _at: Instant) {
        self.report.rejected(rejected);
    }
}

/// What a named bulkhead reports its events to: with feature `metrics`, its gauges and
/// counters; otherwise nothing.
#[derive(Debug)]
pub struct BulkheadEvents {
    name: Arc<str>,
    report: BulkheadReport,
}

impl BulkheadEvents {
    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl BulkheadListener for BulkheadEvents {
    fn on_acquired(&self, in_use: u32) {
        self.report.acquired(in_use);
    }

    fn on_rejected(&self, _full: BulkheadFull) {
        self.report.rejected();
    }

    fn on_released(&self, in_use: u32) {
        self.report.released(in_use);
    }

    fn on_max_changed(&self, _old: u32, new: u32) {
        self.report.max_changed(new);
    }
}

/// A budget that counts what is withdrawn from it (feature `metrics`): the budget of the
/// policies of a [`NamedRetry`] ([`CountRetries`], counting each retry allowed) and of a
/// [`NamedHedge`] ([`CountHedges`], counting each hedge started), as a retry or a hedge is
/// what each withdraws for. It draws on the named retry budget the settings name
/// (`budget = "NAME"`), if any, and otherwise on none (it never refuses). A policy given
/// a budget of its own ([`with_budget`](RetryPolicy::with_budget)) is no longer counted.
#[derive(Clone, Debug)]
pub struct CountWithdrawals {
    report: CountReport,
    budget: Option<Arc<NamedRetryBudget>>,
}

/// The budget of a [`NamedRetry`]'s policies: counts each retry allowed.
pub type CountRetries = CountWithdrawals;

/// The budget of a [`NamedHedge`]: counts each hedge started.
pub type CountHedges = CountWithdrawals;

impl RetryBudget for CountWithdrawals {
    const USES_TIME: bool = false;

    #[inline]
    fn deposit_at(&self, now: Instant) {
        if let Some(budget) = &self.budget {
            budget.deposit_at(now);
        }
    }

    #[inline]
    fn record_success_at(&self, now: Instant) {
        if let Some(budget) = &self.budget {
            budget.record_success_at(now);
        }
    }

    #[inline]
    fn try_withdraw_at(&self, now: Instant) -> bool {
        let allowed = self
            .budget
            .as_ref()
            .is_none_or(|budget| budget.try_withdraw_at(now));
        if allowed {
            self.report.count();
        }
        allowed
    }
}

/// A named retry budget: a [`TokenBudget`] (gRPC's retry throttling) shared by the
/// retry settings that name it (`budget = "NAME"`), reporting the tokens left (feature
/// `metrics`).
#[derive(Debug)]
pub struct NamedRetryBudget {
    budget: TokenBudget,
    /// The settings in force (a reload changes them with the budget's own).
    settings: Mutex<TokenBudgetSettings>,
    report: BudgetReport,
}

impl NamedRetryBudget {
    /// The budget.
    pub fn budget(&self) -> &TokenBudget {
        &self.budget
    }

    /// The settings in force: those it was built from, or of the last reload.
    pub fn settings(&self) -> TokenBudgetSettings {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `settings` in place ([`TokenBudget::set_settings`]: the tokens left stay,
    /// down to the new size).
    fn set_settings(&self, settings: TokenBudgetSettings) -> Result<(), ConfigError> {
        let mut current = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
        self.budget
            .set_settings(settings.max_tokens, settings.token_ratio)?;
        *current = settings;
        self.report.tokens(self.budget.milli_tokens());
        Ok(())
    }

    /// Tokens left, in thousandths.
    pub fn milli_tokens(&self) -> u32 {
        self.budget.milli_tokens()
    }
}

impl RetryBudget for NamedRetryBudget {
    const USES_TIME: bool = false;

    #[inline]
    fn deposit_at(&self, now: Instant) {
        self.budget.deposit_at(now);
    }

    #[inline]
    fn record_success_at(&self, now: Instant) {
        self.budget.record_success_at(now);
        self.report.tokens(self.budget.milli_tokens());
    }

    #[inline]
    fn try_withdraw_at(&self, now: Instant) -> bool {
        let allowed = self.budget.try_withdraw_at(now);
        self.report.tokens(self.budget.milli_tokens());
        allowed
    }
}

/// The policy of one operation of a [`NamedRetry`].
pub type NamedRetryPolicy = RetryPolicy<AnyBackoff, TransientErrors, CountRetries, MaxRetryAfter>;

/// Named retry settings: each operation builds its [`RetryPolicy`] from the settings in
/// force when it starts ([`policy`](Self::policy)); a reload changes the settings of the
/// operations that start after it.
#[derive(Debug)]
pub struct NamedRetry {
    current: RwLock<Retry>,
    report: CountReport,
}

#[derive(Clone, Debug)]
struct Retry {
    settings: RetrySettings,
    /// The name of its retry budget, if any.
    budget: Option<String>,
    /// The policy of the settings, built (and so checked) once: each operation's policy
    /// is a copy of it, reseeded and given its deadline.
    template: NamedRetryPolicy,
}

impl Retry {
    fn new(
        settings: RetrySettings,
        budget: Option<(String, Arc<NamedRetryBudget>)>,
        report: CountReport,
    ) -> Result<Retry, ConfigError> {
        let (budget, shared) = budget.unzip();
        let template = settings
            .build(fastrand::Rng::with_seed(0), Instant::ZERO)?
            .with_budget(CountWithdrawals {
                report,
                budget: shared,
            });
        Ok(Retry {
            settings,
            budget,
            template,
        })
    }
}

impl NamedRetry {
    fn read(&self) -> Retry {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings in force.
    pub fn settings(&self) -> RetrySettings {
        self.read().settings
    }

    /// The name of the retry budget in force, if any.
    pub fn budget_name(&self) -> Option<String> {
        self.read().budget
    }

    /// The policy of one operation starting at `now`, drawing jitter from `rng` (seed
    /// each operation's differently: see [`RetryPolicy::new`]).
    ///
    /// ```
    /// use stanchion::Instant;
    /// use stanchion_std::registry::{Document, Registry};
    ///
    /// let text = "[retry.downstream]\nmax_attempts = 3\nbackoff = \"immediate\"\ntimeout = \"2s\"\n";
    /// let registry = Registry::new(&Document::parse("policies.toml", text)?)?;
    /// let retry = registry.retry("downstream").expect("configured");
    /// let policy = retry.policy(fastrand::Rng::with_seed(7), Instant::from_secs(1));
    /// assert_eq!(policy.max_attempts(), 3);
    /// assert_eq!(policy.deadline().instant(), Instant::from_secs(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&self, rng: fastrand::Rng, now: Instant) -> NamedRetryPolicy {
        // Under the read lock, copying only the template (a pipeline calls this for
        // every call).
        let retry = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let mut policy = retry
            .template
            .clone()
            .with_deadline(retry.settings.deadline(now));
        *policy.rng_mut() = rng;
        policy
    }

    fn replace(&self, retry: Retry) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = retry;
    }
}

/// A named hedge: core's [`Hedge`] (its delay, fixed or learned, and its attempts per
/// call) on the process-wide tokio clock, drawing its hedges from the retry budget its
/// settings name, if any, and counting them (feature `metrics`). With feature `tower`,
/// `Registry::hedge_layer` runs it.
pub type NamedHedge = Hedging<CountHedges>;

/// A hedge and the settings it was built from.
struct HedgeEntry {
    hedging: Arc<NamedHedge>,
    config: HedgeConfig,
    /// The name of its retry budget, if any.
    budget: Option<String>,
}

/// A named fallback: which failures it answers ([`FallbackOn`], by the layer that
/// refused), and the count of its answers (feature `metrics`). The answer itself is the
/// program's: `Registry::fallback_layer` (feature `tower`) wraps it in a tower fallback
/// layer that counts each answer.
#[derive(Debug)]
pub struct NamedFallback {
    on: FallbackOn,
    report: CountReport,
}

impl NamedFallback {
    /// The failures it answers.
    pub fn on(&self) -> FallbackOn {
        self.on
    }

    /// Counts one answer, for a fallback run by hand (as with
    /// [`Pipeline::call_or_else`](crate::Pipeline::call_or_else)); the layer of
    /// `Registry::fallback_layer` counts its own.
    pub fn answered(&self) {
        self.report.count();
    }
}

/// The layers a fallback's `on` may name, as core's [`FallbackOn`] covers them.
const FALLBACK_LAYERS: [Layer; 6] = [
    Layer::OverallTimeout,
    Layer::RateLimit,
    Layer::Bulkhead,
    Layer::CircuitBreaker,
    Layer::Retry,
    Layer::Throttle,
];

/// A breaker and the settings it was built from (core's breaker does not keep the
/// window's choice).
struct BreakerEntry<const CAP: usize> {
    breaker: Arc<NamedBreaker<CAP>>,
    config: BreakerConfig,
    window: BreakerWindow,
}

/// A pipeline of the registry's named instances, as a `[pipeline.NAME]` composes it:
/// [`Pipeline`]'s layers in its order (overall timeout, rate limit, bulkhead, circuit
/// breaker, retry, attempt timeout), each one the named instance the other handles and
/// layers share, so that a reload of a quota or of retry settings is seen by its next
/// call, and the instances' metrics count its calls.
///
/// Its rate limit waits in a line of the pipeline's own (bounded by its `timeout`;
/// without one, a call waits until the limiter grants it); its bulkhead, shared, has no
/// line: a call that finds it full is refused at once. Each call's retry policy is made
/// from the named settings in force when it reaches the retry layer, within the call's
/// deadline. Its breaker records every `Err` as a failure ([`ErrorsAreFailures`]).
pub type NamedPipeline<C = TokioClock, const CAP: usize = DEFAULT_CAP> = Pipeline<
    Arc<NamedRateLimiter<C>>,
    BulkheadEvents,
    Arc<NamedBreaker<CAP>>,
    ErrorsAreFailures,
    AnyBackoff,
    TransientErrors,
    CountRetries,
    NoFaults,
>;

/// What a `[pipeline.NAME]` composes: the timeouts, and the instance of each layer by
/// name (`None` for a layer it leaves out). See [`Registry::pipeline_settings`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineSettings {
    /// `timeout`: the whole call's.
    pub timeout: Option<Duration>,
    /// `rate_limit`: the name of a `[rate_limit.NAME]`.
    pub rate_limit: Option<String>,
    /// `bulkhead`: the name of a `[bulkhead.NAME]`.
    pub bulkhead: Option<String>,
    /// `breaker`: the name of a `[breaker.NAME]`.
    pub breaker: Option<String>,
    /// `retry`: the name of a `[retry.NAME]`.
    pub retry: Option<String>,
    /// `attempt_timeout`: each attempt's.
    pub attempt_timeout: Option<Duration>,
}

/// A pipeline's fields, in the order of its layers.
const PIPELINE_FIELDS: [&str; 6] = [
    "timeout",
    "rate_limit",
    "bulkhead",
    "breaker",
    "retry",
    "attempt_timeout",
];

impl PipelineSettings {
    /// The instances it names: each as its field (also the instance's section) and the
    /// name.
    fn instances(&self) -> [(&'static str, Option<&String>); 4] {
        [
            ("rate_limit", self.rate_limit.as_ref()),
            ("bulkhead", self.bulkhead.as_ref()),
            ("breaker", self.breaker.as_ref()),
            ("retry", self.retry.as_ref()),
        ]
    }

    /// The first field, in the order of the layers, where `other` differs.
    fn first_difference(&self, other: &PipelineSettings) -> Option<&'static str> {
        if self.timeout != other.timeout {
            return Some("timeout");
        }
        let names = self.instances().into_iter().zip(other.instances());
        if let Some(((field, _), _)) = names.into_iter().find(|((_, a), (_, b))| a != b) {
            return Some(field);
        }
        (self.attempt_timeout != other.attempt_timeout).then_some("attempt_timeout")
    }
}

/// A pipeline and what it was composed from.
struct PipelineEntry<C, const CAP: usize> {
    pipeline: Arc<NamedPipeline<C, CAP>>,
    spec: PipelineSettings,
}

/// The live instances, by section and name.
struct Instances<C, const CAP: usize> {
    rate_limits: BTreeMap<String, Arc<NamedRateLimiter<C>>>,
    breakers: BTreeMap<String, BreakerEntry<CAP>>,
    retries: BTreeMap<String, Arc<NamedRetry>>,
    bulkheads: BTreeMap<String, Arc<NamedBulkhead>>,
    budgets: BTreeMap<String, Arc<NamedRetryBudget>>,
    hedges: BTreeMap<String, HedgeEntry>,
    fallbacks: BTreeMap<String, Arc<NamedFallback>>,
    pipelines: BTreeMap<String, PipelineEntry<C, CAP>>,
}

impl<C, const CAP: usize> Instances<C, CAP> {
    fn empty() -> Self {
        Instances {
            rate_limits: BTreeMap::new(),
            breakers: BTreeMap::new(),
            retries: BTreeMap::new(),
            bulkheads: BTreeMap::new(),
            budgets: BTreeMap::new(),
            hedges: BTreeMap::new(),
            fallbacks: BTreeMap::new(),
            pipelines: BTreeMap::new(),
        }
    }
}

/// A document's instances, read and checked, not yet built.
#[derive(Default)]
struct Plan {
    rate_limits: BTreeMap<String, Quota>,
    breakers: BTreeMap<String, (BreakerConfig, BreakerWindow)>,
    retries: BTreeMap<String, (RetrySettings, Option<String>)>,
    bulkheads: BTreeMap<String, BulkheadSettings>,
    budgets: BTreeMap<String, TokenBudgetSettings>,
    hedges: BTreeMap<String, (HedgeConfig, Option<String>)>,
    fallbacks: BTreeMap<String, FallbackOn>,
    pipelines: BTreeMap<String, PipelineSettings>,
}

/// What a [`reload`](Registry::reload) did: the instances it changed and those it added,
/// each as `section.name`, in the order of the sections and then of the names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Live instances whose settings changed.
    pub changed: Vec<String>,
    /// Names the document added.
    pub added: Vec<String>,
}

/// Named instances built from one [`Document`], handed out as shared handles, reloaded
/// in place. See the [module docs](self) for the document and what a reload does.
///
/// `C` is the clock of the rate limiters; `CAP` the window capacity of the breakers
/// ([`DEFAULT_CAP`]).
pub struct Registry<C = TokioClock, const CAP: usize = DEFAULT_CAP> {
    clock: C,
    live: Mutex<Instances<C, CAP>>,
}

impl<C, const CAP: usize> std::fmt::Debug for Registry<C, CAP> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Registry")
            .field("rate_limits", &live.rate_limits.keys().collect::<Vec<_>>())
            .field("breakers", &live.breakers.keys().collect::<Vec<_>>())
            .field("retries", &live.retries.keys().collect::<Vec<_>>())
            .field("bulkheads", &live.bulkheads.keys().collect::<Vec<_>>())
            .field("retry_budgets", &live.budgets.keys().collect::<Vec<_>>())
            .field("hedges", &live.hedges.keys().collect::<Vec<_>>())
            .field("fallbacks", &live.fallbacks.keys().collect::<Vec<_>>())
            .field("pipelines", &live.pipelines.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// The instances of `document`, with rate limiters on a [`TokioClock`] and breaker
    /// windows of capacity [`DEFAULT_CAP`]; the first error of the document otherwise.
    pub fn new(document: &Document) -> Result<Registry, RegistryError> {
        Registry::with_clock(document, TokioClock::new())
    }
}

impl<C: Clock + Clone + Send + Sync, const CAP: usize> Registry<C, CAP> {
    /// The instances of `document`, with rate limiters on `clock`.
    pub fn with_clock(document: &Document, clock: C) -> Result<Registry<C, CAP>, RegistryError> {
        let plan = read_plan::<CAP>(document)?;
        let mut live = Instances::empty();
        let mut added = Vec::new();
        add_new(
            &mut live,
            &plan,
            &clock,
            document,
            &Instances::empty(),
            &mut added,
        )?;
        Ok(Registry {
            clock,
            live: Mutex::new(live),
        })
    }

    fn live(&self) -> MutexGuard<'_, Instances<C, CAP>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rate limiter named `name`.
    pub fn rate_limiter(&self, name: &str) -> Option<Arc<NamedRateLimiter<C>>> {
        self.live().rate_limits.get(name).cloned()
    }

    /// The circuit breaker named `name`.
    pub fn breaker(&self, name: &str) -> Option<Arc<NamedBreaker<CAP>>> {
        self.live()
            .breakers
            .get(name)
            .map(|e| Arc::clone(&e.breaker))
    }

    /// The configuration and the window choice the breaker named `name` was built from
    /// (core's breaker keeps the configuration, not the choice).
    pub fn breaker_settings(&self, name: &str) -> Option<(BreakerConfig, BreakerWindow)> {
        self.live().breakers.get(name).map(|e| (e.config, e.window))
    }

    /// The retry settings named `name`.
    pub fn retry(&self, name: &str) -> Option<Arc<NamedRetry>> {
        self.live().retries.get(name).cloned()
    }

    /// The bulkhead named `name`.
    pub fn bulkhead(&self, name: &str) -> Option<Arc<NamedBulkhead>> {
        self.live().bulkheads.get(name).cloned()
    }

    /// The retry budget named `name`.
    pub fn retry_budget(&self, name: &str) -> Option<Arc<NamedRetryBudget>> {
        self.live().budgets.get(name).cloned()
    }

    /// The hedge named `name`.
    pub fn hedge(&self, name: &str) -> Option<Arc<NamedHedge>> {
        self.live().hedges.get(name).map(|e| Arc::clone(&e.hedging))
    }

    /// The configuration and the retry budget's name the hedge named `name` was built
    /// from.
    pub fn hedge_settings(&self, name: &str) -> Option<(HedgeConfig, Option<String>)> {
        self.live()
            .hedges
            .get(name)
            .map(|e| (e.config, e.budget.clone()))
    }

    /// The fallback named `name`.
    pub fn fallback(&self, name: &str) -> Option<Arc<NamedFallback>> {
        self.live().fallbacks.get(name).cloned()
    }

    /// The pipeline named `name` (a `[pipeline.NAME]`): the registry's named instances
    /// composed in [`Pipeline`]'s order, shared with every other handle and layer (see
    /// [`NamedPipeline`]). Every call returns the same pipeline.
    ///
    /// ```
    /// use stanchion::pipeline::PipelineError;
    /// use stanchion_std::registry::{Document, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let text = r#"
    ///     [rate_limit.api]
    ///     burst = 1
    ///     period = "1s"
    ///
    ///     [retry.downstream]
    ///     max_attempts = 3
    ///     backoff = "immediate"
    ///
    ///     [pipeline.downstream]
    ///     timeout = "500ms"
    ///     rate_limit = "api"
    ///     retry = "downstream"
    /// "#;
    /// let registry = Registry::new(&Document::parse("policies.toml", text)?)?;
    /// let pipeline = registry.pipeline("downstream").expect("configured");
    /// let flaky = pipeline
    ///     .call(|attempt| async move { if attempt < 3 { Err("flaky") } else { Ok(attempt) } })
    ///     .await;
    /// assert_eq!(flaky, Ok(3));
    /// // The quota's one permit is taken, and the next comes after the call's 500 ms.
    /// let refused: Result<u32, _> = pipeline.call(|_| async { Ok::<_, &str>(1) }).await;
    /// assert!(matches!(refused, Err(PipelineError::RateLimited(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn pipeline(&self, name: &str) -> Option<Arc<NamedPipeline<C, CAP>>> {
        self.live()
            .pipelines
            .get(name)
            .map(|e| Arc::clone(&e.pipeline))
    }

    /// What the pipeline named `name` composes, as its document says.
    pub fn pipeline_settings(&self, name: &str) -> Option<PipelineSettings> {
        self.live().pipelines.get(name).map(|e| e.spec.clone())
    }

    /// The names of every instance, as `section.name`, in the order of the sections
    /// (`rate_limit`, `breaker`, `retry`, `bulkhead`, `retry_budget`, `hedge`,
    /// `fallback`, `pipeline`) and then of the names.
    pub fn names(&self) -> Vec<String> {
        let live = self.live();
        let names = |section: &str, keys: Vec<&String>| {
            keys.into_iter()
                .map(|k| format!("{section}.{k}"))
                .collect::<Vec<_>>()
        };
        let mut all = names("rate_limit", live.rate_limits.keys().collect());
        all.extend(names("breaker", live.breakers.keys().collect()));
        all.extend(names("retry", live.retries.keys().collect()));
        all.extend(names("bulkhead", live.bulkheads.keys().collect()));
        all.extend(names("retry_budget", live.budgets.keys().collect()));
        all.extend(names("hedge", live.hedges.keys().collect()));
        all.extend(names("fallback", live.fallbacks.keys().collect()));
        all.extend(names("pipeline", live.pipelines.keys().collect()));
        all
    }

    /// Applies `document` to the live instances, all or nothing (see the
    /// [module docs](self)): quotas, bulkhead limits, retry settings and a breaker's
    /// thresholds and maximum wait change in place, new names are added; a change to a
    /// breaker's other fields or window, a retry budget, a hedge, a fallback or a
    /// pipeline's composition, or a name left out, is refused with an error naming the
    /// instance, the field and the reason, and then nothing is applied.
    ///
    /// Reloads are serialised with each other. Handles already handed out see the
    /// changes (they are the live instances).
    pub fn reload(&self, document: &Document) -> Result<Reloaded, RegistryError> {
        let plan = read_plan::<CAP>(document)?;
        let mut live = self.live();
        // First every check, then every change: a refusal leaves everything as it was.
        let removed = |section: &str, name: &str| {
            RegistryError::new(
                "cannot remove a live instance: handles to it may be in use (keep it in the \
                 document, or restart)",
            )
            .at(Origin::Document {
                name: document.name().to_owned(),
            })
            .instance(section, name)
        };
        // A change that cannot be applied to `field` of a live instance, and why.
        let unchangeable = |section: &str, name: &str, field: &str, why: &str| {
            let path = [section.to_owned(), name.to_owned(), field.to_owned()];
            RegistryError::new(why)
                .at(document.origin(&path))
                .instance(section, name)
                .field(field)
        };
        for name in live.rate_limits.keys() {
            if !plan.rate_limits.contains_key(name) {
                return Err(removed("rate_limit", name));
            }
        }
        // Breakers whose configuration changes in place, with the new one.
        let mut reconfigured = Vec::new();
        for (name, entry) in &live.breakers {
            let Some((config, window)) = plan.breakers.get(name) else {
                return Err(removed("breaker", name));
            };
            if *window != entry.window {
                return Err(unchangeable(
                    "breaker",
                    name,
                    "window",
                    "cannot change a live circuit breaker's window: the window is the \
                     breaker's state, which rebuilding it would lose (restart to apply it)",
                ));
            }
            // Core says which fields it can change in place (`config` itself is valid:
            // `read_plan` built a breaker of it).
            if let Err(refused) = entry.breaker.check_reconfigure(config) {
                return Err(unchangeable(
                    "breaker",
                    name,
                    refused.field(),
                    "cannot change this field of a live circuit breaker: core's \
                     CircuitBreaker changes only failure_rate_threshold, \
                     slow_call_rate_threshold, minimum_calls, max_wait_in_half_open and \
                     after_max_wait in place, and rebuilding it would lose its window and \
                     state (restart to apply it)",
                ));
            }
            if *config != entry.config {
                reconfigured.push((name.clone(), *config));
            }
        }
        for name in live.retries.keys() {
            if !plan.retries.contains_key(name) {
                return Err(removed("retry", name));
            }
        }
        for name in live.bulkheads.keys() {
            if !plan.bulkheads.contains_key(name) {
                return Err(removed("bulkhead", name));
            }
        }
        let mut budgets = Vec::new();
        for (name, budget) in &live.budgets {
            let Some(settings) = plan.budgets.get(name) else {
                return Err(removed("retry_budget", name));
            };
            if *settings != budget.settings() {
                // Valid: `read_plan` built a budget of these settings.
                budgets.push((name.clone(), Arc::clone(budget), *settings));
            }
        }
        for (name, entry) in &live.hedges {
            let Some((config, budget)) = plan.hedges.get(name) else {
                return Err(removed("hedge", name));
            };
            let field = if *budget != entry.budget {
                Some("budget".to_owned())
            } else if *config != entry.config {
                Some(first_difference(&entry.config, config))
            } else {
                None
            };
            if let Some(field) = field {
                return Err(unchangeable(
                    "hedge",
                    name,
                    &field,
                    "cannot change a live hedge's settings: core's Hedge has no way to change \
                     them in place, and rebuilding it would lose its learned latencies \
                     (restart to apply them)",
                ));
            }
        }
        for (name, fallback) in &live.fallbacks {
            let Some(on) = plan.fallbacks.get(name) else {
                return Err(removed("fallback", name));
            };
            if *on != fallback.on {
                return Err(unchangeable(
                    "fallback",
                    name,
                    "on",
                    "cannot change a live fallback's `on`: the tower layers handed out hold \
                     it (restart to apply it)",
                ));
            }
        }
        for (name, entry) in &live.pipelines {
            let Some(spec) = plan.pipelines.get(name) else {
                return Err(removed("pipeline", name));
            };
            if let Some(field) = entry.spec.first_difference(spec) {
                return Err(unchangeable(
                    "pipeline",
                    name,
                    field,
                    "cannot change a live pipeline's composition: the pipeline handed out \
                     holds its layers and timeouts, and handles to it may be in use (restart \
                     to apply it, or compose the new one under a new name)",
                ));
            }
        }
        // Build the new names' instances before changing anything (building checks them
        // once more against the capacity; `read_plan` did already).
        let mut fresh = Instances::empty();
        let new_only = Plan {
            rate_limits: without(&plan.rate_limits, &live.rate_limits),
            breakers: without(&plan.breakers, &live.breakers),
            retries: without(&plan.retries, &live.retries),
            bulkheads: without(&plan.bulkheads, &live.bulkheads),
            budgets: without(&plan.budgets, &live.budgets),
            hedges: without(&plan.hedges, &live.hedges),
            fallbacks: without(&plan.fallbacks, &live.fallbacks),
            pipelines: without(&plan.pipelines, &live.pipelines),
        };
        let mut reloaded = Reloaded::default();
        add_new(
            &mut fresh,
            &new_only,
            &self.clock,
            document,
            &live,
            &mut reloaded.added,
        )?;
        let mut quotas = Vec::new();
        for (name, quota) in &plan.rate_limits {
            if let Some(limiter) = live.rate_limits.get(name) {
                if limiter.limiter().quota() != *quota {
                    quotas.push((Arc::clone(limiter), *quota));
                    reloaded.changed.push(format!("rate_limit.{name}"));
                }
            }
        }
        let mut retries = Vec::new();
        for (name, (settings, budget)) in &plan.retries {
            if let Some(shared) = live.retries.get(name) {
                let current = shared.read();
                if current.settings != *settings || current.budget != *budget {
                    let budget = named_budget(budget, &fresh.budgets, &live.budgets);
                    let retry = Retry::new(*settings, budget, shared.report.clone())
                        .map_err(|e| config_error(document, "retry", name, &[], &e))?;
                    retries.push((Arc::clone(shared), retry));
                    reloaded.changed.push(format!("retry.{name}"));
                }
            }
        }

        // Apply: nothing below can fail. A quota change racing another thread's own
        // `set_quota` on the same bucket is tried again once that one is done.
        for (limiter, quota) in quotas {
            while limiter.limiter().set_quota(quota).is_err() {
                std::thread::yield_now();
            }
        }
        for (shared, retry) in retries {
            shared.replace(retry);
        }
        for (name, config) in reconfigured {
            if let Some(entry) = live.breakers.get_mut(&name) {
                // Checked above: valid (`read_plan` built it), and its other fields the
                // breaker's own.
                if entry.breaker.reconfigure(config).is_ok() {
                    entry.config = config;
                    reloaded.changed.push(format!("breaker.{name}"));
                }
            }
        }
        for (name, settings) in &plan.bulkheads {
            if let Some(bulkhead) = live.bulkheads.get(name) {
                if bulkhead.max_concurrent() != settings.max_concurrent
                    && bulkhead.set_max_concurrent(settings.max_concurrent).is_ok()
                {
                    reloaded.changed.push(format!("bulkhead.{name}"));
                }
            }
        }
        for (name, budget, settings) in budgets {
            if budget.set_settings(settings).is_ok() {
                reloaded.changed.push(format!("retry_budget.{name}"));
            }
        }
        live.rate_limits.append(&mut fresh.rate_limits);
        live.breakers.append(&mut fresh.breakers);
        live.retries.append(&mut fresh.retries);
        live.bulkheads.append(&mut fresh.bulkheads);
        live.budgets.append(&mut fresh.budgets);
        live.hedges.append(&mut fresh.hedges);
        live.fallbacks.append(&mut fresh.fallbacks);
        live.pipelines.append(&mut fresh.pipelines);
        Ok(reloaded)
    }
}

#[cfg(feature = "tower")]
impl<C: Clock + Clone + Send + Sync, const CAP: usize> Registry<C, CAP> {
    /// A tower rate limit layer over the rate limiter named `name` (one permit per
    /// request).
    pub fn rate_limit_layer(
        &self,
        name: &str,
    ) -> Option<crate::tower::RateLimitLayer<NamedRateLimiter<C>>> {
        self.rate_limiter(name)
            .map(crate::tower::RateLimitLayer::new)
    }

    /// A tower circuit breaker layer over the breaker named `name` (every `Err` a
    /// failure).
    pub fn breaker_layer(
        &self,
        name: &str,
    ) -> Option<crate::tower::CircuitBreakerLayer<NamedBreaker<CAP>>> {
        self.breaker(name)
            .map(crate::tower::CircuitBreakerLayer::new)
    }

    /// A tower bulkhead layer over the bulkhead named `name`.
    pub fn bulkhead_layer(
        &self,
        name: &str,
    ) -> Option<crate::tower::BulkheadLayer<BulkheadEvents>> {
        self.bulkhead(name).map(crate::tower::BulkheadLayer::new)
    }

    /// A tower retry layer whose requests' policies follow the retry settings named
    /// `name`, as in force when each request starts (a reload changes the next requests').
    #[allow(clippy::type_complexity)]
    pub fn retry_layer(
        &self,
        name: &str,
    ) -> Option<
        crate::tower::RetryLayer<
            impl Fn(&TokioClock) -> NamedRetryPolicy + Clone + Send + Sync + 'static + use<C, CAP>,
        >,
    > {
        let retry = self.retry(name)?;
        Some(crate::tower::RetryLayer::new(move |clock: &TokioClock| {
            // The layer replaces the generator with a stream of the request's own.
            retry.policy(fastrand::Rng::with_seed(0), clock.now())
        }))
    }

    /// A tower hedge layer running the hedge named `name`.
    pub fn hedge_layer(&self, name: &str) -> Option<crate::tower::HedgeLayer<CountHedges>> {
        self.hedge(name).map(crate::tower::HedgeLayer::new)
    }

    /// A tower fallback layer answering the failures the fallback named `name` covers
    /// with `fallback(error)`, counting each answer (feature `metrics`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stanchion_std::tower::BoxError> {
    /// use stanchion_std::registry::{Document, Registry};
    /// use stanchion_std::tower::BoxError;
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    ///
    /// let text = "[fallback.page]\non = \"everything\"\n";
    /// let registry = Registry::new(&Document::parse("policies.toml", text)?)?;
    /// let layer = registry
    ///     .fallback_layer("page", |_: BoxError| "cached page".to_owned())
    ///     .expect("configured");
    /// let svc = ServiceBuilder::new()
    ///     .layer(layer)
    ///     .service(service_fn(|_: ()| async { Err::<String, BoxError>("down".into()) }));
    /// assert_eq!(svc.oneshot(()).await?, "cached page");
    /// # Ok(())
    /// # }
    /// ```
    pub fn fallback_layer<G, R>(
        &self,
        name: &str,
        fallback: G,
    ) -> Option<
        crate::tower::FallbackLayer<
            impl Fn(crate::tower::BoxError) -> R + Clone + use<G, R, C, CAP>,
        >,
    >
    where
        G: Fn(crate::tower::BoxError) -> R + Clone,
    {
        let named = self.fallback(name)?;
        // The counter's handle, not the instance: it is cloned with the closure for each
        // request.
        let report = named.report.clone();
        Some(crate::tower::FallbackLayer::new(
            named.on,
            move |error: crate::tower::BoxError| {
                report.count();
                fallback(error)
            },
        ))
    }
}

/// The entries of `plan` whose names `live` does not have.
fn without<T: Clone, U>(
    plan: &BTreeMap<String, T>,
    live: &BTreeMap<String, U>,
) -> BTreeMap<String, T> {
    plan.iter()
        .filter(|(name, _)| !live.contains_key(*name))
        .map(|(name, t)| (name.clone(), t.clone()))
        .collect()
}

/// The first field (in the order of their names) where two configurations differ.
fn first_difference<T: serde::Serialize>(old: &T, new: &T) -> String {
    let (Ok(toml::Value::Table(old)), Ok(toml::Value::Table(new))) =
        (toml::Value::try_from(old), toml::Value::try_from(new))
    else {
        return String::new();
    };
    new.iter()
        .find(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .or_else(|| old.keys().find(|k| !new.contains_key(*k)).cloned())
        .unwrap_or_default()
}

/// Builds the instances of `plan` into `live`, recording each as `section.name` in
/// `added`.
/// `existing` holds the instances already live, which new ones may refer to.
fn add_new<C: Clock + Clone + Send + Sync, const CAP: usize>(
    live: &mut Instances<C, CAP>,
    plan: &Plan,
    clock: &C,
    document: &Document,
    existing: &Instances<C, CAP>,
    added: &mut Vec<String>,
) -> Result<(), RegistryError> {
    // The budgets first: retry settings refer to them.
    let mut budgets = Vec::new();
    for (name, settings) in &plan.budgets {
        let budget = settings
            .build()
            .map_err(|e| config_error(document, "retry_budget", name, &[], &e))?;
        let report = BudgetReport::new(name, budget.milli_tokens());
        live.budgets.insert(
            name.clone(),
            Arc::new(NamedRetryBudget {
                budget,
                settings: Mutex::new(*settings),
                report,
            }),
        );
        budgets.push(format!("retry_budget.{name}"));
    }
    for (name, quota) in &plan.rate_limits {
        let limiter = NamedRateLimiter {
            bucket: TokenBucket::new(*quota),
            clock: clock.clone(),
            report: RateLimitReport::new(name),
        };
        live.rate_limits.insert(name.clone(), Arc::new(limiter));
        added.push(format!("rate_limit.{name}"));
    }
    for (name, (config, choice)) in &plan.breakers {
        let breaker = build_breaker::<CAP>(document, name, config, choice)?;
        live.breakers.insert(
            name.clone(),
            BreakerEntry {
                breaker: Arc::new(breaker),
                config: *config,
                window: *choice,
            },
        );
        added.push(format!("breaker.{name}"));
    }
    for (name, (settings, budget)) in &plan.retries {
        let report = CountReport::new(report::RETRIES, name);
        let budget = named_budget(budget, &live.budgets, &existing.budgets);
        let retry = Retry::new(*settings, budget, report.clone())
            .map_err(|e| config_error(document, "retry", name, &[], &e))?;
        live.retries.insert(
            name.clone(),
            Arc::new(NamedRetry {
                current: RwLock::new(retry),
                report,
            }),
        );
        added.push(format!("retry.{name}"));
    }
    for (name, settings) in &plan.bulkheads {
        let events = BulkheadEvents {
            name: name.as_str().into(),
            report: BulkheadReport::new(name, settings.max_concurrent),
        };
        let bulkhead = Bulkhead::with_listener(settings.max_concurrent, events)
            .map_err(|e| config_error(document, "bulkhead", name, &[], &e))?;
        live.bulkheads.insert(name.clone(), Arc::new(bulkhead));
        added.push(format!("bulkhead.{name}"));
    }
    added.append(&mut budgets);
    for (name, (config, budget_name)) in &plan.hedges {
        let budget = CountWithdrawals {
            report: CountReport::new(report::HEDGES, name),
            budget: named_budget(budget_name, &live.budgets, &existing.budgets).map(|(_, b)| b),
        };
        let hedge = Hedge::new(*config, budget)
            .map_err(|e| config_error(document, "hedge", name, &[], &e))?;
        live.hedges.insert(
            name.clone(),
            HedgeEntry {
                hedging: Arc::new(Hedging::new(hedge)),
                config: *config,
                budget: budget_name.clone(),
            },
        );
        added.push(format!("hedge.{name}"));
    }
    for (name, on) in &plan.fallbacks {
        let fallback = NamedFallback {
            on: *on,
            report: CountReport::new(report::FALLBACK_ANSWERS, name),
        };
        live.fallbacks.insert(name.clone(), Arc::new(fallback));
        added.push(format!("fallback.{name}"));
    }
    // The pipelines last: they compose the others.
    for (name, spec) in &plan.pipelines {
        let pipeline = build_pipeline(document, name, spec, live, existing)?;
        live.pipelines.insert(
            name.clone(),
            PipelineEntry {
                pipeline: Arc::new(pipeline),
                spec: spec.clone(),
            },
        );
        added.push(format!("pipeline.{name}"));
    }
    Ok(())
}

/// The pipeline `spec` composes, from the instances of `new` or `existing` it names
/// (`read_plan` checked that the document has them), on the process-wide tokio clock.
fn build_pipeline<C: Clock + Clone + Send + Sync, const CAP: usize>(
    document: &Document,
    name: &str,
    spec: &PipelineSettings,
    new: &Instances<C, CAP>,
    existing: &Instances<C, CAP>,
) -> Result<NamedPipeline<C, CAP>, RegistryError> {
    fn find<'a, T>(
        name: &str,
        new: &'a BTreeMap<String, T>,
        existing: &'a BTreeMap<String, T>,
    ) -> Option<&'a T> {
        new.get(name).or_else(|| existing.get(name))
    }
    let missing = |field: &str, target: &str| missing_instance(document, name, field, target);
    let clock = TokioClock::new();
    let mut pipeline = <NamedPipeline<C, CAP>>::empty(clock);
    if let Some(timeout) = spec.timeout {
        pipeline = pipeline.overall_timeout(timeout);
    }
    if let Some(target) = &spec.rate_limit {
        let limiter = find(target, &new.rate_limits, &existing.rate_limits)
            .ok_or_else(|| missing("rate_limit", target))?;
        pipeline = pipeline.rate_limit(RateLimitQueue::new(Arc::clone(limiter), clock));
    }
    if let Some(target) = &spec.bulkhead {
        let bulkhead = find(target, &new.bulkheads, &existing.bulkheads)
            .ok_or_else(|| missing("bulkhead", target))?;
        pipeline = pipeline.shared_bulkhead(Arc::clone(bulkhead));
    }
    if let Some(target) = &spec.breaker {
        let entry = find(target, &new.breakers, &existing.breakers)
            .ok_or_else(|| missing("breaker", target))?;
        pipeline = pipeline.circuit_breaker(Arc::clone(&entry.breaker));
    }
    if let Some(target) = &spec.retry {
        let retry = Arc::clone(
            find(target, &new.retries, &existing.retries)
                .ok_or_else(|| missing("retry", target))?,
        );
        // The pipeline gives each call a random stream of its own.
        pipeline = pipeline.retry_from(move |clock: &TokioClock| {
            retry.policy(fastrand::Rng::with_seed(0), clock.now())
        });
    }
    if let Some(timeout) = spec.attempt_timeout {
        pipeline = pipeline.attempt_timeout(timeout);
    }
    Ok(pipeline)
}

/// A pipeline's `field` names `target`, which the document does not have.
fn missing_instance(document: &Document, name: &str, field: &str, target: &str) -> RegistryError {
    let what = match field {
        "rate_limit" => "rate limit",
        "breaker" => "circuit breaker",
        "retry" => "retry settings",
        _ => field,
    };
    located(
        document,
        "pipeline",
        name,
        vec![field.to_owned()],
        format!("no {what} named `{target}` (a `[{field}.{target}]`)"),
    )
}

/// The retry budget named `name`, from the new ones or the live ones (`read_plan` checked
/// that the document has it).
fn named_budget(
    name: &Option<String>,
    new: &BTreeMap<String, Arc<NamedRetryBudget>>,
    live: &BTreeMap<String, Arc<NamedRetryBudget>>,
) -> Option<(String, Arc<NamedRetryBudget>)> {
    let name = name.as_ref()?;
    new.get(name)
        .or_else(|| live.get(name))
        .map(|b| (name.clone(), Arc::clone(b)))
}

/// The key under which a window's choice is written (`window = { count = { ... } }`).
fn window_kind(choice: &BreakerWindow) -> &'static str {
    match choice {
        BreakerWindow::Consecutive { .. } => "consecutive",
        BreakerWindow::Count { .. } => "count",
        BreakerWindow::Time { .. } => "time",
    }
}

fn build_breaker<const CAP: usize>(
    document: &Document,
    name: &str,
    config: &BreakerConfig,
    choice: &BreakerWindow,
) -> Result<NamedBreaker<CAP>, RegistryError> {
    let window = choice.build::<CAP>().map_err(|e| {
        let error = config_error(
            document,
            "breaker",
            name,
            &["window", window_kind(choice)],
            &e,
        );
        error.append(&format!(" (this registry's CAP is {CAP})"))
    })?;
    CircuitBreaker::with_listener(*config, window, BreakerEvents::new(name))
        .map_err(|e| config_error(document, "breaker", name, &[], &e))
}

/// A constructor's refusal of the value at `path` inside instance `name` of `section`:
/// the field is the one the error names, below `path`.
fn config_error(
    document: &Document,
    section: &str,
    name: &str,
    path: &[&str],
    error: &ConfigError,
) -> RegistryError {
    let mut field: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    field.push(error.field().to_owned());
    located(document, section, name, field, error.to_string())
}

/// An error about the field at `field` (a path inside instance `name` of `section`),
/// placed in the document.
fn located(
    document: &Document,
    section: &str,
    name: &str,
    field: Vec<String>,
    message: String,
) -> RegistryError {
    let mut full = vec![section.to_owned(), name.to_owned()];
    full.extend(field.iter().cloned());
    RegistryError::new(message)
        .at(document.origin(&full))
        .instance(section, name)
        .field(field.join("."))
}

/// The first name in backticks in a message, if it reads as a key (`burst`, not `-1`):
/// serde's and core's messages name the field they are about that way.
fn named_key(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message.get(start..)?.find('`')?;
    let key = message.get(start..start + len)?;
    let is_key = key.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    is_key.then_some(key)
}

/// Reads `value`, the value at `path` inside instance `name` of `section`, as a `T`.
fn read<T: DeserializeOwned>(
    document: &Document,
    section: &str,
    name: &str,
    path: &[&str],
    value: toml::Value,
) -> Result<T, RegistryError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let mut field: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        let mut inner = Vec::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => inner.push(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => inner.push(variant.clone()),
                serde_path_to_error::Segment::Seq { index } => inner.push(index.to_string()),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = e.inner().message().trim_end().to_owned();
        // A value's constructor refuses it once its fields are read, naming the field:
        // the error is about that field, found below the path (through the variant's
        // table, if the path stops at an enum written as `{ variant = { ... } }`).
        if let Some(key) = named_key(&message) {
            if inner.last().map(String::as_str) != Some(key) {
                let mut at = &value;
                for k in &inner {
                    match at.get(k.as_str()) {
                        Some(v) => at = v,
                        None => break,
                    }
                }
                if let Some(table) = at.as_table() {
                    if !table.contains_key(key) && table.len() == 1 {
                        if let Some((variant, v)) = table.iter().next() {
                            if v.get(key).is_some() {
                                inner.push(variant.clone());
                            }
                        }
                    }
                }
                inner.push(key.to_owned());
            }
        }
        field.extend(inner);
        located(document, section, name, field, message)
    })
}

/// Reads and checks every instance of `document`.
fn read_plan<const CAP: usize>(document: &Document) -> Result<Plan, RegistryError> {
    let mut plan = Plan::default();
    for (section, value) in document.table() {
        let section_path = [section.clone()];
        if !SECTIONS.contains(&section.as_str()) {
            return Err(RegistryError::new(format!(
                "unknown section `{section}`, expected one of `rate_limit`, `breaker`, \
                 `retry`, `bulkhead`, `retry_budget`, `hedge`, `fallback`, `pipeline`"
            ))
            .at(document.origin(&section_path)));
        }
        let toml::Value::Table(instances) = value else {
            return Err(RegistryError::new(format!(
                "`{section}` must be a table of named instances, as `[{section}.NAME]`"
            ))
            .at(document.origin(&section_path)));
        };
        for (name, value) in instances {
            let toml::Value::Table(fields) = value else {
                return Err(RegistryError::new(format!(
                    "an instance must be a table of its settings, as `[{section}.{name}]`"
                ))
                .at(document.origin(&[section.clone(), name.clone()]))
                .instance(section, name));
            };
            match section.as_str() {
                "rate_limit" => {
                    let quota = read(document, section, name, &[], value.clone())?;
                    plan.rate_limits.insert(name.clone(), quota);
                }
                "breaker" => {
                    let mut fields = fields.clone();
                    let Some(window) = fields.remove("window") else {
                        return Err(located(
                            document,
                            section,
                            name,
                            vec!["window".to_owned()],
                            "missing field `window` (such as `window = { count = { size = 100 } }`)"
                                .to_owned(),
                        ));
                    };
                    let config: BreakerConfig =
                        read(document, section, name, &[], toml::Value::Table(fields))?;
                    let choice: BreakerWindow = read(document, section, name, &["window"], window)?;
                    // Checks the window against the capacity and the configuration
                    // against the window.
                    build_breaker::<CAP>(document, name, &config, &choice)?;
                    plan.breakers.insert(name.clone(), (config, choice));
                }
                "retry" => {
                    let mut fields = fields.clone();
                    let budget = take_budget(document, section, name, &mut fields)?;
                    let settings = read(document, section, name, &[], toml::Value::Table(fields))?;
                    plan.retries.insert(name.clone(), (settings, budget));
                }
                "hedge" => {
                    let mut fields = fields.clone();
                    let budget = take_budget(document, section, name, &mut fields)?;
                    let config: HedgeConfig =
                        read(document, section, name, &[], toml::Value::Table(fields))?;
                    plan.hedges.insert(name.clone(), (config, budget));
                }
                "fallback" => {
                    let on = read_fallback(document, name, fields)?;
                    plan.fallbacks.insert(name.clone(), on);
                }
                "pipeline" => {
                    let spec = read_pipeline(document, name, fields)?;
                    plan.pipelines.insert(name.clone(), spec);
                }
                "retry_budget" => {
                    let settings: TokenBudgetSettings =
                        read(document, section, name, &[], value.clone())?;
                    settings
                        .build()
                        .map_err(|e| config_error(document, section, name, &[], &e))?;
                    plan.budgets.insert(name.clone(), settings);
                }
                _ => {
                    let settings = read(document, section, name, &[], value.clone())?;
                    plan.bulkheads.insert(name.clone(), settings);
                }
            }
        }
    }
    // Every budget named is in the document.
    let retries = plan.retries.iter().map(|(n, (_, b))| ("retry", n, b));
    let hedges = plan.hedges.iter().map(|(n, (_, b))| ("hedge", n, b));
    for (section, name, budget) in retries.chain(hedges) {
        if let Some(budget) = budget {
            if !plan.budgets.contains_key(budget) {
                return Err(located(
                    document,
                    section,
                    name,
                    vec!["budget".to_owned()],
                    format!("no retry budget named `{budget}` (a `[retry_budget.{budget}]`)"),
                ));
            }
        }
    }
    // Every instance a pipeline names is in the document.
    for (name, spec) in &plan.pipelines {
        for (field, target) in spec.instances() {
            let Some(target) = target else { continue };
            let known = match field {
                "rate_limit" => plan.rate_limits.contains_key(target),
                "bulkhead" => plan.bulkheads.contains_key(target),
                "breaker" => plan.breakers.contains_key(target),
                _ => plan.retries.contains_key(target),
            };
            if !known {
                return Err(missing_instance(document, name, field, target));
            }
        }
    }
    Ok(plan)
}

/// Reads a pipeline's fields: `timeout` and `attempt_timeout` (durations above zero),
/// and the names of its instances (`rate_limit`, `bulkhead`, `breaker`, `retry`).
fn read_pipeline(
    document: &Document,
    name: &str,
    fields: &toml::Table,
) -> Result<PipelineSettings, RegistryError> {
    let error = |field: &str, message: String| {
        located(document, "pipeline", name, vec![field.to_owned()], message)
    };
    let duration = |field: &str, value: &toml::Value| {
        let parsed = match value.as_str() {
            Some(text) => duration::parse(text),
            None => Err(DurationError::Syntax),
        };
        match parsed {
            Ok(d) if d.is_zero() => Err(error(
                field,
                format!("`{field}` must be above zero (a zero timeout would refuse every call)"),
            )),
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(error(
                field,
                format!("`{field}` must be {}, not {value}", e.allowed()),
            )),
        }
    };
    let instance = |field: &str, value: &toml::Value| match value.as_str() {
        Some(target) => Ok(Some(target.to_owned())),
        None => Err(error(
            field,
            format!(
                "`{field}` must be the name of a `[{field}.NAME]`, as `{field} = \"downstream\"`, \
                 not {value}"
            ),
        )),
    };
    let mut spec = PipelineSettings::default();
    for (key, value) in fields {
        match key.as_str() {
            "timeout" => spec.timeout = duration(key, value)?,
            "attempt_timeout" => spec.attempt_timeout = duration(key, value)?,
            "rate_limit" => spec.rate_limit = instance(key, value)?,
            "bulkhead" => spec.bulkhead = instance(key, value)?,
            "breaker" => spec.breaker = instance(key, value)?,
            "retry" => spec.retry = instance(key, value)?,
            _ => {
                return Err(error(
                    key,
                    format!(
                        "unknown field `{key}`, expected one of `{}`",
                        PIPELINE_FIELDS.join("`, `")
                    ),
                ));
            }
        }
    }
    Ok(spec)
}

/// Takes the `budget` field (the name of a retry budget) out of an instance's `fields`.
fn take_budget(
    document: &Document,
    section: &str,
    name: &str,
    fields: &mut toml::Table,
) -> Result<Option<String>, RegistryError> {
    match fields.remove("budget") {
        None => Ok(None),
        Some(toml::Value::String(budget)) => Ok(Some(budget)),
        Some(_) => Err(located(
            document,
            section,
            name,
            vec!["budget".to_owned()],
            "`budget` must be the name of a retry budget, as `budget = \"downstream\"`".to_owned(),
        )),
    }
}

/// Reads a fallback's fields: `on`, the failures it answers, as `"refusals"`,
/// `"everything"` or a list of the layers that refuse or give up.
fn read_fallback(
    document: &Document,
    name: &str,
    fields: &toml::Table,
) -> Result<FallbackOn, RegistryError> {
    let error = |field: &str, message: String| {
        located(document, "fallback", name, vec![field.to_owned()], message)
    };
    if let Some(key) = fields.keys().find(|k| *k != "on") {
        return Err(error(key, format!("unknown field `{key}`, expected `on`")));
    }
    let expected = || {
        let layers: Vec<&str> = FALLBACK_LAYERS.iter().map(|l| l.name()).collect();
        format!(
            "`on` must be \"refusals\", \"everything\" or a list of layers among `{}`",
            layers.join("`, `")
        )
    };
    match fields.get("on") {
        None => Err(error(
            "on",
            "missing field `on` (such as `on = \"refusals\"` or `on = [\"rate_limit\", \
             \"circuit_breaker\"]`)"
                .to_owned(),
        )),
        Some(toml::Value::String(all)) if all == "refusals" => Ok(FallbackOn::REFUSALS),
        Some(toml::Value::String(all)) if all == "everything" => Ok(FallbackOn::EVERYTHING),
        Some(toml::Value::Array(list)) => {
            let mut on = FallbackOn::NOTHING;
            for item in list {
                let layer = item
                    .as_str()
                    .and_then(|s| FALLBACK_LAYERS.iter().find(|l| l.name() == s));
                match layer {
                    Some(layer) => on = on.layer(*layer),
                    None => return Err(error("on", format!("{}, not {item}", expected()))),
                }
            }
            Ok(on)
        }
        Some(other) => Err(error("on", format!("{}, not {other}", expected()))),
    }
}
