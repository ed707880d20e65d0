//! `Serialize` and `Deserialize` for core's configuration types. Each reads a plain form
//! (`...Form`) and builds the value through its constructor; each writes that form back.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::serde_support::{Dur, Expected, Frac, Q32, RATIO_FORM};
use super::settings::{
    AnyBackoff, BreakerWindow, BulkheadSettings, RatioBudgetSettings, RetrySettings,
    ThrottleSettings, TokenBudgetSettings,
};
use crate::ConfigError;
use crate::adaptive::{Aimd, AimdConfig, Vegas, VegasConfig};
use crate::breaker::{AfterMaxWait, BreakerConfig};
use crate::hedge::{HedgeConfig, HedgeDelay};
use crate::rate::{Quota, Spacing, WindowQuota};
use crate::retry::jitter::Kind;
use crate::retry::policy::DEFAULT_MAX_RETRY_AFTER;
use crate::retry::{
    Constant, DecorrelatedJitter, DecorrelatedJitterV2, Exponential, Immediate, Jitter, Linear,
    Ratio,
};

/// A constructor's result as a deserialisation result.
fn built<T, E: serde::de::Error>(result: Result<T, ConfigError>) -> Result<T, E> {
    result.map_err(E::custom)
}

/// Implements `Serialize` through `to_form` and `Deserialize` through `from_form`.
macro_rules! through_form {
    ($ty:ty, $form:ty, $to:expr, $from:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let to: fn(&$ty) -> $form = $to;
                to(self).serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let from: fn($form) -> Result<$ty, ConfigError> = $from;
                built(from(<$form>::deserialize(deserializer)?))
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// Rate limiting
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename = "Quota", deny_unknown_fields)]
struct QuotaForm {
    burst: u32,
    period: Dur,
}

through_form!(
    Quota,
    QuotaForm,
    |q| QuotaForm {
        burst: q.burst(),
        period: Dur::nanos(q.period_nanos()),
    },
    |f| Quota::new(f.burst, f.period.get("period")?)
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "WindowQuota", deny_unknown_fields)]
struct WindowQuotaForm {
    limit: u32,
    window: Dur,
}

through_form!(
    WindowQuota,
    WindowQuotaForm,
    |q| WindowQuotaForm {
        limit: q.limit(),
        window: Dur::of(q.window()),
    },
    |f| WindowQuota::new(f.limit, f.window.get("window")?)
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "Spacing", deny_unknown_fields)]
struct SpacingForm {
    period: Dur,
    max_delay: Dur,
}

through_form!(
    Spacing,
    SpacingForm,
    |s| SpacingForm {
        period: Dur::of(s.period()),
        max_delay: Dur::of(s.max_delay()),
    },
    |f| Spacing::new(f.period.get("period")?, f.max_delay.get("max_delay")?)
);

// ---------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------

/// Thresholds are read as `u32` and kept at most 255 (itself out of range), so that 300 is
/// refused by the range check, naming the field, rather than by the integer type.
fn percent(value: u32) -> u8 {
    u8::try_from(value).unwrap_or(u8::MAX)
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "BreakerConfig", deny_unknown_fields, default)]
struct BreakerConfigForm {
    failure_rate_threshold: u32,
    slow_call_rate_threshold: u32,
    slow_call_duration: Dur,
    minimum_calls: u32,
    permitted_calls_in_half_open: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_wait_in_half_open: Option<Dur>,
    after_max_wait: AfterMaxWait,
    #[serde(skip_serializing_if = "Option::is_none")]
    open_duration: Option<Dur>,
}

impl Default for BreakerConfigForm {
    fn default() -> Self {
        to_breaker_form(&BreakerConfig::new())
    }
}

fn to_breaker_form(c: &BreakerConfig) -> BreakerConfigForm {
    BreakerConfigForm {
        failure_rate_threshold: c.failure_rate_threshold.into(),
        slow_call_rate_threshold: c.slow_call_rate_threshold.into(),
        slow_call_duration: Dur::nanos(c.slow_call_nanos),
        minimum_calls: c.minimum_calls,
        permitted_calls_in_half_open: c.permitted_calls_in_half_open.into(),
        max_wait_in_half_open: c.get_max_wait_in_half_open().map(|(d, _)| Dur::of(d)),
        after_max_wait: c.after_max_wait,
        open_duration: c.open_duration.map(Dur::of),
    }
}

fn from_breaker_form(f: BreakerConfigForm) -> Result<BreakerConfig, ConfigError> {
    // Read as `u32`, so that a count past the `u16` is refused naming the field.
    let Ok(permitted) = u16::try_from(f.permitted_calls_in_half_open) else {
        return Err(ConfigError::new(
            "permitted_calls_in_half_open",
            "in 1..=65535",
        ));
    };
    let mut c = BreakerConfig::new()
        .failure_rate_threshold(percent(f.failure_rate_threshold))
        .slow_call_rate_threshold(percent(f.slow_call_rate_threshold))
        .slow_call_duration(f.slow_call_duration.get("slow_call_duration")?)
        .minimum_calls(f.minimum_calls)
        .permitted_calls_in_half_open(permitted);
    if let Some(wait) = f.max_wait_in_half_open {
        c = c.max_wait_in_half_open(wait.get("max_wait_in_half_open")?, f.after_max_wait);
    }
    c.after_max_wait = f.after_max_wait;
    if let Some(open) = f.open_duration {
        c = c.open_duration(open.get("open_duration")?);
    }
    c.validate()?;
    Ok(c)
}

through_form!(
    BreakerConfig,
    BreakerConfigForm,
    to_breaker_form,
    from_breaker_form
);

#[derive(Serialize, Deserialize)]
#[serde(
    rename = "BreakerWindow",
    rename_all = "snake_case",
    deny_unknown_fields
)]
enum BreakerWindowForm {
    Consecutive { length: u32 },
    Count { size: u32 },
    Time { span: Dur, buckets: u32 },
}

through_form!(
    BreakerWindow,
    BreakerWindowForm,
    |w| match *w {
        BreakerWindow::Consecutive { length } => BreakerWindowForm::Consecutive { length },
        BreakerWindow::Count { size } => BreakerWindowForm::Count { size },
        BreakerWindow::Time { span, buckets } => BreakerWindowForm::Time {
            span: Dur::of(span),
            buckets,
        },
    },
    |f| {
        let w = match f {
            BreakerWindowForm::Consecutive { length } => BreakerWindow::Consecutive { length },
            BreakerWindowForm::Count { size } => BreakerWindow::Count { size },
            BreakerWindowForm::Time { span, buckets } => BreakerWindow::Time {
                span: span.get("span")?,
                buckets,
            },
        };
        w.validate()?;
        Ok(w)
    }
);

// ---------------------------------------------------------------------------------------
// Retry: ratios, jitter, backoffs, settings
// ---------------------------------------------------------------------------------------

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        frac(*self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = Frac::deserialize(deserializer)?;
        read.ratio("ratio").map_err(|e| {
            if read.0.is_none() {
                D::Error::custom(Expected(RATIO_FORM))
            } else {
                D::Error::custom(e)
            }
        })
    }
}

/// `jitter` as the documents spell it: `"none"`, `"full"`, `"equal"`, or
/// `{ "proportional": "10%" }` (a spread in `0..=1`).
#[derive(Serialize, Deserialize)]
#[serde(rename = "Jitter", rename_all = "snake_case")]
enum JitterForm {
    None,
    Full,
    Equal,
    Proportional(Q32),
}

const SPREAD: &str = "a spread in 0..=1";

through_form!(
    Jitter,
    JitterForm,
    |j| match (j.kind, j.spread_q32()) {
        (_, Some(q)) => JitterForm::Proportional(Q32::Bits(q)),
        (Kind::Full, _) => JitterForm::Full,
        (Kind::Equal, _) => JitterForm::Equal,
        _ => JitterForm::None,
    },
    |f| Ok(match f {
        JitterForm::None => Jitter::NONE,
        JitterForm::Full => Jitter::FULL,
        JitterForm::Equal => Jitter::EQUAL,
        JitterForm::Proportional(spread) => {
            let q = spread.get("jitter", SPREAD)?;
            if q > 1 << 32 {
                return Err(ConfigError::new("jitter", SPREAD));
            }
            Jitter::from_q32(q)
        }
    })
);

fn is_no_jitter(j: &Jitter) -> bool {
    *j == Jitter::NONE
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "Immediate", deny_unknown_fields)]
struct ImmediateForm {}

through_form!(Immediate, ImmediateForm, |_| ImmediateForm {}, |_| Ok(
    Immediate
));

#[derive(Serialize, Deserialize)]
#[serde(rename = "Constant", deny_unknown_fields)]
struct ConstantForm {
    delay: Dur,
    #[serde(default, skip_serializing_if = "is_no_jitter")]
    jitter: Jitter,
}

through_form!(
    Constant,
    ConstantForm,
    |b| ConstantForm {
        delay: Dur::nanos(b.delay),
        jitter: b.jitter,
    },
    |f| Ok(Constant::new(f.delay.get("delay")?).with_jitter(f.jitter))
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "Linear", deny_unknown_fields)]
struct LinearForm {
    initial: Dur,
    step: Dur,
    cap: Dur,
    #[serde(default, skip_serializing_if = "is_no_jitter")]
    jitter: Jitter,
}

through_form!(
    Linear,
    LinearForm,
    |b| LinearForm {
        initial: Dur::nanos(b.initial),
        step: Dur::nanos(b.step),
        cap: Dur::nanos(b.cap),
        jitter: b.jitter,
    },
    |f| Ok(Linear::new(
        f.initial.get("initial")?,
        f.step.get("step")?,
        f.cap.get("cap")?
    )?
    .with_jitter(f.jitter))
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "Exponential", deny_unknown_fields)]
struct ExponentialForm {
    base: Dur,
    factor: Q32,
    cap: Dur,
    #[serde(default, skip_serializing_if = "is_no_jitter")]
    jitter: Jitter,
}

through_form!(
    Exponential,
    ExponentialForm,
    |b| ExponentialForm {
        base: Dur::nanos(b.base),
        factor: Q32::Bits(b.factor),
        cap: Dur::nanos(b.cap),
        jitter: b.jitter,
    },
    |f| {
        // `Exponential::new`'s checks, in its order: the factor, then the cap. The factor
        // is kept exactly as its 32.32 fixed point (a decimal such as "1.5" need not fit
        // a `Ratio` of two `u32`).
        let factor = f.factor.get("factor", "at most 4294967295")?;
        if factor < 1 << 32 {
            return Err(ConfigError::new("factor", "at least 1"));
        }
        let mut b = Exponential::new(f.base.get("base")?, Ratio::ONE, f.cap.get("cap")?)?;
        b.factor = factor;
        Ok(b.with_jitter(f.jitter))
    }
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "DecorrelatedJitter", deny_unknown_fields)]
struct DecorrelatedJitterForm {
    base: Dur,
    cap: Dur,
}

through_form!(
    DecorrelatedJitter,
    DecorrelatedJitterForm,
    |b| DecorrelatedJitterForm {
        base: Dur::nanos(b.base),
        cap: Dur::nanos(b.cap),
    },
    |f| DecorrelatedJitter::new(f.base.get("base")?, f.cap.get("cap")?)
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "DecorrelatedJitterV2", deny_unknown_fields)]
struct DecorrelatedJitterV2Form {
    median: Dur,
    cap: Dur,
}

through_form!(
    DecorrelatedJitterV2,
    DecorrelatedJitterV2Form,
    |b| DecorrelatedJitterV2Form {
        median: Dur::nanos(b.median),
        cap: Dur::nanos(b.cap),
    },
    |f| DecorrelatedJitterV2::new(f.median.get("median")?, f.cap.get("cap")?)
);

/// `AnyBackoff` as the documents spell it: `"immediate"` or `{ "<kind>": { ... } }`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "AnyBackoff", rename_all = "snake_case")]
enum AnyBackoffForm {
    Immediate,
    Constant(Constant),
    Linear(Linear),
    Exponential(Exponential),
    DecorrelatedJitter(DecorrelatedJitter),
    DecorrelatedJitterV2(DecorrelatedJitterV2),
}

through_form!(
    AnyBackoff,
    AnyBackoffForm,
    |b| match *b {
        AnyBackoff::Immediate => AnyBackoffForm::Immediate,
        AnyBackoff::Constant(b) => AnyBackoffForm::Constant(b),
        AnyBackoff::Linear(b) => AnyBackoffForm::Linear(b),
        AnyBackoff::Exponential(b) => AnyBackoffForm::Exponential(b),
        AnyBackoff::DecorrelatedJitter(b) => AnyBackoffForm::DecorrelatedJitter(b),
        AnyBackoff::DecorrelatedJitterV2(b) => AnyBackoffForm::DecorrelatedJitterV2(b),
    },
    |f| Ok(match f {
        AnyBackoffForm::Immediate => AnyBackoff::Immediate,
        AnyBackoffForm::Constant(b) => AnyBackoff::Constant(b),
        AnyBackoffForm::Linear(b) => AnyBackoff::Linear(b),
        AnyBackoffForm::Exponential(b) => AnyBackoff::Exponential(b),
        AnyBackoffForm::DecorrelatedJitter(b) => AnyBackoff::DecorrelatedJitter(b),
        AnyBackoffForm::DecorrelatedJitterV2(b) => AnyBackoff::DecorrelatedJitterV2(b),
    })
);

fn default_max_retry_after() -> Dur {
    Dur::of(DEFAULT_MAX_RETRY_AFTER)
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "RetrySettings", deny_unknown_fields)]
struct RetrySettingsForm<B> {
    backoff: B,
    max_attempts: u32,
    #[serde(default = "default_max_retry_after")]
    max_retry_after: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<Dur>,
}

impl<B: Serialize + Clone> Serialize for RetrySettings<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RetrySettingsForm {
            backoff: self.backoff.clone(),
            max_attempts: self.max_attempts,
            max_retry_after: Dur::of(self.max_retry_after),
            timeout: self.timeout.map(Dur::of),
        }
        .serialize(serializer)
    }
}

impl<'de, B: Deserialize<'de> + crate::retry::Backoff + Clone> Deserialize<'de>
    for RetrySettings<B>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = RetrySettingsForm::<B>::deserialize(deserializer)?;
        let build = || -> Result<RetrySettings<B>, ConfigError> {
            let settings = RetrySettings {
                backoff: f.backoff,
                max_attempts: f.max_attempts,
                max_retry_after: f.max_retry_after.get("max_retry_after")?,
                timeout: match f.timeout {
                    Some(t) => Some(t.get("timeout")?),
                    None => None,
                },
            };
            settings.validate()?;
            Ok(settings)
        };
        built(build())
    }
}

// ---------------------------------------------------------------------------------------
// Adaptive concurrency
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename = "AimdConfig", deny_unknown_fields, default)]
struct AimdConfigForm {
    initial_limit: u32,
    min_limit: u32,
    max_limit: u32,
    backoff_per_1024: u32,
    timeout: Dur,
}

fn to_aimd_form(c: &AimdConfig) -> AimdConfigForm {
    AimdConfigForm {
        initial_limit: c.initial_limit,
        min_limit: c.min_limit,
        max_limit: c.max_limit,
        backoff_per_1024: c.backoff_per_1024,
        timeout: Dur::of(c.timeout),
    }
}

impl Default for AimdConfigForm {
    fn default() -> Self {
        to_aimd_form(&AimdConfig::DEFAULT)
    }
}

through_form!(AimdConfig, AimdConfigForm, to_aimd_form, |f| {
    let config = AimdConfig {
        initial_limit: f.initial_limit,
        min_limit: f.min_limit,
        max_limit: f.max_limit,
        backoff_per_1024: f.backoff_per_1024,
        timeout: f.timeout.get("timeout")?,
    };
    Aimd::new(config)?;
    Ok(config)
});

#[derive(Serialize, Deserialize)]
#[serde(rename = "VegasConfig", deny_unknown_fields, default)]
struct VegasConfigForm {
    initial_limit: u32,
    min_limit: u32,
    max_limit: u32,
    alpha_factor: u32,
    beta_factor: u32,
    smoothing_per_1024: u32,
    probe_multiplier: u32,
}

fn to_vegas_form(c: &VegasConfig) -> VegasConfigForm {
    VegasConfigForm {
        initial_limit: c.initial_limit,
        min_limit: c.min_limit,
        max_limit: c.max_limit,
        alpha_factor: c.alpha_factor,
        beta_factor: c.beta_factor,
        smoothing_per_1024: c.smoothing_per_1024,
        probe_multiplier: c.probe_multiplier,
    }
}

impl Default for VegasConfigForm {
    fn default() -> Self {
        to_vegas_form(&VegasConfig::DEFAULT)
    }
}

through_form!(VegasConfig, VegasConfigForm, to_vegas_form, |f| {
    let config = VegasConfig {
        initial_limit: f.initial_limit,
        min_limit: f.min_limit,
        max_limit: f.max_limit,
        alpha_factor: f.alpha_factor,
        beta_factor: f.beta_factor,
        smoothing_per_1024: f.smoothing_per_1024,
        probe_multiplier: f.probe_multiplier,
    };
    Vegas::new(config)?;
    Ok(config)
});

// ---------------------------------------------------------------------------------------
// Retry budgets, adaptive throttle, bulkhead
// ---------------------------------------------------------------------------------------

fn frac(r: Ratio) -> Frac {
    Frac(Some((r.num().into(), r.den().into())))
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "TokenBudgetSettings", deny_unknown_fields)]
struct TokenBudgetSettingsForm {
    max_tokens: u32,
    token_ratio: Frac,
}

through_form!(
    TokenBudgetSettings,
    TokenBudgetSettingsForm,
    |s| TokenBudgetSettingsForm {
        max_tokens: s.max_tokens,
        token_ratio: frac(s.token_ratio),
    },
    |f| {
        let settings = TokenBudgetSettings {
            max_tokens: f.max_tokens,
            token_ratio: f.token_ratio.ratio("token_ratio")?,
        };
        settings.build()?;
        Ok(settings)
    }
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "RatioBudgetSettings", deny_unknown_fields)]
struct RatioBudgetSettingsForm {
    window: Dur,
    ratio: Frac,
    #[serde(default)]
    floor: u32,
}

through_form!(
    RatioBudgetSettings,
    RatioBudgetSettingsForm,
    |s| RatioBudgetSettingsForm {
        window: Dur::of(s.window),
        ratio: frac(s.ratio),
        floor: s.floor,
    },
    |f| {
        let settings = RatioBudgetSettings {
            window: f.window.get("window")?,
            ratio: f.ratio.ratio("ratio")?,
            floor: f.floor,
        };
        // What holds for any number of buckets: those of one.
        settings.build::<1>()?;
        Ok(settings)
    }
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "ThrottleSettings", deny_unknown_fields)]
struct ThrottleSettingsForm {
    window: Dur,
    k: Frac,
}

through_form!(
    ThrottleSettings,
    ThrottleSettingsForm,
    |s| ThrottleSettingsForm {
        window: Dur::of(s.window),
        k: frac(s.k),
    },
    |f| {
        let settings = ThrottleSettings {
            window: f.window.get("window")?,
            k: f.k.ratio("k")?,
        };
        // What holds for any number of buckets: those of one.
        settings.build::<1>()?;
        Ok(settings)
    }
);

#[derive(Serialize, Deserialize)]
#[serde(rename = "BulkheadSettings", deny_unknown_fields)]
struct BulkheadSettingsForm {
    max_concurrent: u32,
}

through_form!(
    BulkheadSettings,
    BulkheadSettingsForm,
    |s| BulkheadSettingsForm {
        max_concurrent: s.max_concurrent,
    },
    |f| {
        let settings = BulkheadSettings {
            max_concurrent: f.max_concurrent,
        };
        settings.validate()?;
        Ok(settings)
    }
);

// ---------------------------------------------------------------------------------------
// Hedging
// ---------------------------------------------------------------------------------------

/// A hedging configuration: `delay` for a fixed delay, or `per_mille` (with
/// `min_samples` and `window`, defaulting as in [`HedgeConfig::learned`]) for a learned
/// one; `max_attempts` either way.
#[derive(Serialize, Deserialize)]
#[serde(rename = "HedgeConfig", deny_unknown_fields)]
struct HedgeConfigForm {
    max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay: Option<Dur>,
    /// Read as `u32` and kept at most `u16::MAX` (itself out of range), so that 70000 is
    /// refused by the range check, naming the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_mille: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_samples: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<u32>,
}

fn to_hedge_form(c: &HedgeConfig) -> HedgeConfigForm {
    match c.delay() {
        HedgeDelay::Fixed(delay) => HedgeConfigForm {
            max_attempts: c.max_attempts(),
            delay: Some(Dur::of(delay)),
            per_mille: None,
            min_samples: None,
            window: None,
        },
        HedgeDelay::Learned {
            per_mille,
            min_samples,
            window,
        } => HedgeConfigForm {
            max_attempts: c.max_attempts(),
            delay: None,
            per_mille: Some(u32::from(per_mille)),
            min_samples: Some(min_samples),
            window: Some(window),
        },
    }
}

fn from_hedge_form(f: HedgeConfigForm) -> Result<HedgeConfig, ConfigError> {
    match (f.delay, f.per_mille) {
        (Some(delay), None) => {
            if f.window.is_some() {
                return Err(ConfigError::new(
                    "window",
                    "given only with `per_mille` (a learned delay)",
                ));
            }
            if f.min_samples.is_some() {
                return Err(ConfigError::new(
                    "min_samples",
                    "given only with `per_mille` (a learned delay)",
                ));
            }
            HedgeConfig::fixed(delay.get("delay")?, f.max_attempts)
        }
        (None, Some(per_mille)) => {
            let per_mille = u16::try_from(per_mille).unwrap_or(u16::MAX);
            let learned = HedgeConfig::learned(per_mille, f.max_attempts)?;
            let HedgeDelay::Learned {
                min_samples: default_min_samples,
                window: default_window,
                ..
            } = learned.delay()
            else {
                return Ok(learned);
            };
            let window = f.window.unwrap_or(default_window);
            let min_samples = f.min_samples.unwrap_or(default_min_samples);
            // Each setter checks the other bound as it stands: set first the one that
            // fits the default of the other, so that any valid pair is accepted.
            if window >= default_min_samples {
                learned.with_window(window)?.with_min_samples(min_samples)
            } else {
                learned.with_min_samples(min_samples)?.with_window(window)
            }
        }
        (Some(_), Some(_)) => Err(ConfigError::new(
            "delay",
            "left out when `per_mille` is given (a fixed delay or a learned one, not both)",
        )),
        (None, None) => Err(ConfigError::new(
            "delay",
            "given (a fixed delay), or `per_mille` instead (a learned one)",
        )),
    }
}

through_form!(HedgeConfig, HedgeConfigForm, to_hedge_form, from_hedge_form);
