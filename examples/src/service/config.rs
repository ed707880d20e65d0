//! The service's settings: command-line flags, each with an environment variable.

use std::fmt;
use std::time::Duration;

use clap::Parser;
use stanchion::rate::Quota;

/// An HTTP service with every stanchion pattern in front of a flaky downstream.
///
/// Every flag can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "service", version, about, args_override_self = true)]
pub struct Config {
    /// A TOML file of named policies (`stanchion_std::registry`): `[retry.downstream]`,
    /// `[breaker.downstream]`, `[bulkhead.downstream]`. The flags given win over it;
    /// `kill -HUP` or `POST /admin/reload` reads it again.
    #[arg(long, env = "STANCHION_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Port on 127.0.0.1 (0 picks a free one; the first line printed says which).
    #[arg(long, env = "STANCHION_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Token for the admin route (`Authorization: Bearer TOKEN`): 16 to 256 visible ASCII
    /// characters. Required, from here, the variable, or `--admin-token-file`; prefer the
    /// variable or the file: `ps` shows the command line to every user of the machine.
    #[arg(long, env = "STANCHION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// A file holding the admin token (surrounding white space ignored), instead of
    /// `--admin-token`.
    #[arg(
        long,
        env = "STANCHION_ADMIN_TOKEN_FILE",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// An API key and its own quota: `NAME=KEY:N/PERIOD`, e.g. `alice=s3cret:100/60s`.
    /// Repeat for more keys (comma-separated in the variable).
    #[arg(long = "api-key", env = "STANCHION_API_KEYS", value_delimiter = ',', value_parser = parse_api_key, hide_env_values = true)]
    pub api_keys: Vec<ApiKey>,

    /// Quota of each client IP, for requests with no API key or an unknown one: `N/PERIOD`.
    #[arg(long, env = "STANCHION_IP_QUOTA", default_value = "60/60s", value_parser = parse_quota)]
    pub ip_quota: QuotaSpec,

    /// Most client IPs tracked at once (rounded up to a multiple of 256); the memory of
    /// the per-IP table is fixed by it, whatever the number of clients.
    #[arg(long, env = "STANCHION_MAX_CLIENTS", default_value_t = 16_384)]
    pub max_clients: usize,

    /// Keep the per-client limits in Redis (`redis://host:port/db`), shared by every
    /// instance, instead of in this process (needs feature `redis`).
    #[arg(long, env = "STANCHION_REDIS_URL")]
    pub redis_url: Option<String>,

    /// With `--redis-url`: what the per-client limits do while Redis is out of reach.
    /// `share` (the default) needs `--instances`.
    #[arg(long, env = "STANCHION_REDIS_FALLBACK", value_enum, default_value_t = RedisFallback::Share)]
    pub redis_fallback: RedisFallback,

    /// With `--redis-url`: the number of service instances sharing Redis (1 to 10000);
    /// with `--redis-fallback share` each holds 1/N of every quota while Redis is out of
    /// reach.
    #[arg(long, env = "STANCHION_INSTANCES", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub instances: Option<u32>,

    /// Downstream: percentage of calls that fail (0 to 100), changeable at runtime.
    #[arg(long, env = "STANCHION_FAILURE_RATE", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub failure_rate: u32,

    /// Downstream: latency of each call, changeable at runtime.
    #[arg(long, env = "STANCHION_LATENCY", default_value = "20ms", value_parser = parse_duration)]
    pub latency: Duration,

    /// Per-attempt timeout (a timed-out attempt is a failure, and may be retried).
    #[arg(long, env = "STANCHION_ATTEMPT_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    pub attempt_timeout: Duration,

    /// Per-request timeout, waits and retries included (504 when it passes).
    #[arg(long, env = "STANCHION_REQUEST_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Attempts per request, the first included.
    #[arg(long, env = "STANCHION_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: u32,

    /// First retry delay (exponential, doubling, full jitter, capped at 10x this).
    #[arg(long, env = "STANCHION_RETRY_BASE", default_value = "20ms", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Retry budget: at most this many retries in a row while nothing succeeds; each
    /// success earns back a tenth of a retry.
    #[arg(long, env = "STANCHION_RETRY_BUDGET", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub retry_budget: u32,

    /// Consecutive failed attempts that open the circuit breaker.
    #[arg(long, env = "STANCHION_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,

    /// How long the breaker stays open before it lets probes through.
    #[arg(long, env = "STANCHION_OPEN_WAIT", default_value = "5s", value_parser = parse_duration)]
    pub open_wait: Duration,

    /// Probe calls let through when the open wait is over; once their outcomes are all
    /// in, the breaker closes if fewer than half failed, and opens again otherwise.
    #[arg(long, env = "STANCHION_HALF_OPEN_PROBES", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub half_open_probes: u16,

    /// Bulkhead: downstream calls in flight at once.
    #[arg(long, env = "STANCHION_MAX_CONCURRENT", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: u32,

    /// Bulkhead: requests that may wait for a slot (0: refuse at once when full).
    #[arg(long, env = "STANCHION_MAX_WAITING", default_value_t = 0)]
    pub max_waiting: usize,

    /// Seed of the downstream's failures and of the retry jitter (random if not given).
    #[arg(long, env = "STANCHION_SEED")]
    pub seed: Option<u64>,

    /// Serve `/api/data` with the same downstream call but without any stanchion layer
    /// (no rate limit, bulkhead, retry, breaker or timeout): the baseline of the load
    /// benchmark (`cargo xtask bench --load`), so that the difference between a run with
    /// and one without is what the layers cost. The variable takes true/false, yes/no,
    /// on/off or 1/0.
    #[arg(long, env = "STANCHION_BYPASS_LAYERS", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub bypass_layers: bool,

    /// Connections: time a client has to send a whole request head (request line and
    /// header fields), counted from the connection's opening or from the first byte of a
    /// later request on it; the connection is closed when it passes. Stops clients that
    /// send nothing, or a byte at a time, from holding a connection.
    #[arg(long, env = "STANCHION_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// Connections: a kept-alive connection with no request in flight and no byte of a new
    /// one is closed after this long.
    #[arg(long, env = "STANCHION_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Connections: the largest request head accepted, in bytes (8192 to 1048576); a
    /// larger one is answered 431 and its connection closed. It also bounds the memory a
    /// connection's unfinished head can take.
    #[arg(long, env = "STANCHION_MAX_HEADER_BYTES", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(8192..=1_048_576))]
    pub max_header_bytes: u32,

    /// Connections: most open at once, from everyone; connections beyond it are closed as
    /// soon as they are accepted. Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, env = "STANCHION_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Connections: most open at once from one client IP; its connections beyond it are
    /// closed as soon as they are accepted, so one client cannot take every connection.
    #[arg(long, env = "STANCHION_MAX_CONNECTIONS_PER_IP", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// Shutdown: on SIGTERM or SIGINT the service stops accepting, lets the requests in
    /// flight finish for at most this long, then exits, closing whatever is still open.
    #[arg(long, env = "STANCHION_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// `--redis-fallback`: what the per-client limits do while Redis is out of reach. Each
/// instance decides alone then, without knowing what the fleet, or Redis, already granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisFallback {
    /// Refuse every limited request (503) until Redis answers: no quota is exceeded, but
    /// the API is down for every client while Redis is.
    Deny,
    /// Each instance admits 1/N of each quota (N = `--instances`), in a fresh local bucket:
    /// the fleet admits at most about one more quota per period, whatever was spent.
    Share,
    /// Each instance admits each whole quota, in a fresh local bucket: N instances may
    /// admit N quotas per period, even to a client whose quota was spent.
    Full,
}

impl fmt::Display for RedisFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedisFallback::Deny => "deny",
            RedisFallback::Share => "share",
            RedisFallback::Full => "full",
        })
    }
}

/// A configured API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The client's name (metrics and policy names; never the key itself).
    pub name: String,
    /// The secret the client sends in `X-Api-Key`.
    pub key: String,
    /// Its own quota.
    pub quota: QuotaSpec,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// `N/PERIOD`: `n` requests per `period`, all of them available at once (burst `n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Requests per period (also the burst).
    pub n: u32,
    /// The period.
    pub period: Duration,
    /// The token bucket quota it stands for.
    pub quota: Quota,
}

impl fmt::Display for QuotaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.n, DisplayDuration(self.period))
    }
}

/// A duration as the flags write it (`250ms`, `5s`).
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}ns", d.as_nanos())
        }
    }
}

/// Parses a duration: a whole number and a unit, `ms`, `s`, `m` or `h` (`250ms`, `5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{s}` is not a duration: write a whole number and a unit, such as 250ms or 5s")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "`{s}` has no known unit: use ms, s, m or h (such as 250ms or 5s)"
            ));
        }
    };
    Ok(d)
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// The longest admin token accepted.
pub const MAX_ADMIN_TOKEN_LEN: usize = 256;

impl Config {
    /// The admin token, from `--admin-token` (or its variable) or `--admin-token-file`.
    ///
    /// # Errors
    ///
    /// None given, the file unreadable, or a token that is not
    /// [`MIN_ADMIN_TOKEN_LEN`] to [`MAX_ADMIN_TOKEN_LEN`] visible ASCII characters.
    pub fn admin_token(&self) -> Result<String, String> {
        let token = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => token.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("--admin-token-file {}: {e}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => String::new(),
        };
        if token.is_empty() {
            return Err(
                "an admin token is required: set STANCHION_ADMIN_TOKEN, or pass --admin-token-file PATH (or --admin-token TOKEN, which ps shows)"
                    .to_owned(),
            );
        }
        if !(MIN_ADMIN_TOKEN_LEN..=MAX_ADMIN_TOKEN_LEN).contains(&token.len())
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "the admin token must be {MIN_ADMIN_TOKEN_LEN} to {MAX_ADMIN_TOKEN_LEN} visible ASCII characters (it has {}); use a random one, such as the output of `openssl rand -hex 16`",
                token.chars().count()
            ));
        }
        Ok(token)
    }
}

/// Parses a duration above zero (see [`parse_duration`]).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("`{s}`: must be above zero")),
        d => Ok(d),
    }
}

/// Parses a quota: `N/PERIOD`, such as `100/60s`.
pub fn parse_quota(s: &str) -> Result<QuotaSpec, String> {
    let (n, period) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a quota: write N/PERIOD, such as 100/60s"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: the count before `/` must be a whole number"))?;
    let period = parse_duration(period)?;
    let quota = Quota::per_interval(n, period).map_err(|e| format!("`{s}`: {e}"))?;
    Ok(QuotaSpec { n, period, quota })
}

/// Parses an API key: `NAME=KEY:N/PERIOD`.
pub fn parse_api_key(s: &str) -> Result<ApiKey, String> {
    let usage = "write NAME=KEY:N/PERIOD, such as alice=s3cret:100/60s";
    let (name, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("an API key needs a name: {usage}"))?;
    let (key, quota) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("API key `{name}` needs a quota: {usage}"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "API key name `{name}`: use letters, digits, `-` and `_` only"
        ));
    }
    if !crate::service::clients::is_well_formed_key(key) {
        return Err(format!(
            "API key `{name}`: the key must be 1 to {} visible ASCII characters",
            crate::service::clients::MAX_KEY_LEN
        ));
    }
    Ok(ApiKey {
        name: name.to_owned(),
        key: key.to_owned(),
        quota: parse_quota(quota)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_quotas_and_keys_parse_or_say_why_not() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").unwrap_err().contains("no known unit"));
        assert!(parse_duration("ms").unwrap_err().contains("not a duration"));
        let q = parse_quota("100/60s").unwrap();
        assert_eq!(
            (q.n, q.period, q.quota.burst()),
            (100, Duration::from_secs(60), 100)
        );
        assert_eq!(q.to_string(), "100/60s");
        assert!(parse_quota("0/1s").is_err());
        assert!(parse_quota("100").is_err());
        let k = parse_api_key("alice=a:b:c:3/1s").unwrap();
        assert_eq!(
            (k.name.as_str(), k.key.as_str(), k.quota.n),
            ("alice", "a:b:c", 3)
        );
        assert!(!format!("{k:?}").contains("a:b:c"));
        assert!(parse_api_key("alice").is_err());
        assert!(parse_api_key("al ice=k:1/1s").is_err());
        assert!(parse_api_key("alice=:1/1s").is_err());
    }
}
