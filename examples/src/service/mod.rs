//! The HTTP service example: every stanchion pattern in front of a deliberately flaky
//! downstream, with per-client limits, an admin route, `/health` and `/metrics`.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | flags and environment variables (`clap`) |
//! | [`clients`] | per-client keying: API keys with their own quotas, everyone else by IP |
//! | [`downstream`] | the in-process service, made slow and flaky by fault injection |
//! | [`app`] | the router, and the refusals as HTTP answers |
//! | [`admin`] | the token-protected route that changes the downstream at runtime and switches its faults |
//! | [`metrics`] | Prometheus text (the `metrics` facade, `metrics-exporter-prometheus`) |
//! | [`policies`] | the downstream's retry, breaker and bulkhead from `--config FILE` and the flags, reloadable |
//! | [`server`] | the connection layer: caps, timeouts, header size, shutdown |
//!
//! The per-client limits and the layers that read time on every request read one
//! `stanchion_std::CoarseClock`, started with the service: see [`app`'s docs](app#clock)
//! for why, and what its millisecond of staleness means for each.
//!
//! Run it with `cargo run -p stanchion-examples --bin service -- --admin-token-file PATH`
//! (or the token in `STANCHION_ADMIN_TOKEN`);
//! the README's service section shows a session with curl.

pub mod admin;
pub mod app;
pub mod clients;
pub mod config;
pub mod downstream;
pub mod metrics;
pub mod policies;
pub mod server;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use self::app::{AppState, router};
use self::clients::ClientLimits;
use self::config::{Config, DisplayDuration};
use self::policies::Policies;
use self::server::{ServerLimits, Signals};
use stanchion::config::BreakerWindow;
use stanchion_std::CoarseClock;

/// Parses the flags, starts the service, and serves until SIGTERM or SIGINT (Ctrl-C).
pub fn main() -> ExitCode {
    let matches = Config::command().get_matches();
    let config = match Config::from_arg_matches(&matches) {
        Ok(config) => config,
        Err(e) => e.exit(),
    };
    // The flags given (or set by their variables), which win over the `--config` file.
    let given: Vec<String> = matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect();
    let admin_token = match config.admin_token() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("service: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("service: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(config, admin_token, given));
    // Connections still open after the shutdown timeout are closed here, with their tasks.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("service: {e}");
            ExitCode::from(2)
        }
    }
}

fn limits(config: &Config, clock: CoarseClock) -> Result<ClientLimits, String> {
    match &config.redis_url {
        None => ClientLimits::local(
            &config.api_keys,
            config.ip_quota,
            config.max_clients,
            clock,
        ),
        #[cfg(feature = "redis")]
        Some(url) => ClientLimits::redis(
            &config.api_keys,
            config.ip_quota,
            url,
            config.redis_fallback,
            config.instances,
        ),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(
            "--redis-url needs the `redis` feature: cargo run -p stanchion-examples --features redis --bin service"
                .to_owned(),
        ),
    }
}

async fn serve(config: Config, admin_token: String, given: Vec<String>) -> Result<(), String> {
    let policies = Policies::new(&config, |id| given.iter().any(|g| g == id))?;
    // One clock for the per-client limits and every layer that reads time on each request
    // (see `app`'s module docs).
    let clock = CoarseClock::start();
    let limits = limits(&config, clock)?;
    let state = Arc::new(AppState::new(
        &config,
        admin_token,
        limits,
        policies,
        clock,
    )?);
    let app = router(state.clone())?;
    let server_limits = ServerLimits::from_config(&config);
    // Before the first line: a signal from then on stops the service cleanly.
    let signals = Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
    // SIGHUP reloads the `--config` file, from before the first line too.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups =
            signal(SignalKind::hangup()).map_err(|e| format!("cannot handle signals: {e}"))?;
        let state = state.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match state.reload_policies() {
                    Ok(line) => println!("{line}"),
                    Err(why) => println!("reload refused: {why}"),
                }
                let _ = std::io::stdout().flush();
            }
        });
    }
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    // The first line says where: tests read it to find a port picked by the system.
    println!("listening on http://{bound}");
    // With Redis: whether it answers now, so that the line below says what is in use.
    state.limits.probe().await;
    let (keys, ip_quota) = (config.api_keys.len(), config.ip_quota);
    match state.limits.store_name() {
        "redis" if state.limits.falling_back() => println!(
            "per-client limits in this process until Redis answers (Redis is out of reach; {}): {keys} API key(s), everyone else {ip_quota} per IP",
            state.limits.fallback_description()
        ),
        "redis" => println!(
            "per-client limits in redis: {keys} API key(s), everyone else {ip_quota} per IP (any number of IPs); while Redis is out of reach, {}",
            state.limits.fallback_description()
        ),
        store => println!(
            "per-client limits in {store}: {keys} API key(s), everyone else {ip_quota} per IP (up to {} IPs tracked)",
            state.limits.capacity()
        ),
    }
    // The policies in force: the flags', or the `--config` file's under the flags given.
    let registry = &state.policies.registry;
    let attempts = registry
        .retry("downstream")
        .map_or(config.max_attempts, |r| r.settings().max_attempts);
    let (opens, open_for) = match registry.breaker_settings("downstream") {
        Some((breaker, window)) => (
            match window {
                BreakerWindow::Consecutive { length } => format!("after {length} failures"),
                BreakerWindow::Count { size } => format!("on its failure rate over {size} calls"),
                BreakerWindow::Time { span, .. } => {
                    format!("on its failure rate over {}", DisplayDuration(span))
                }
            },
            breaker.get_open_duration().unwrap_or(config.open_wait),
        ),
        None => (
            format!("after {} failures", config.breaker_failures),
            config.open_wait,
        ),
    };
    println!(
        "downstream: {}% failures, {} latency; request timeout {}, attempt timeout {}, {attempts} attempts, breaker opens {opens} for {}, bulkhead {}",
        config.failure_rate,
        DisplayDuration(config.latency),
        DisplayDuration(config.request_timeout),
        DisplayDuration(config.attempt_timeout),
        DisplayDuration(open_for),
        state.bulkhead.bulkhead().max_concurrent(),
    );
    if let Some(file) = &config.config {
        println!(
            "policies from {} (the flags given win over it; SIGHUP or POST /admin/reload reads it again): {}",
            file.display(),
            state.policies.registry.names().join(", ")
        );
    }
    println!("{server_limits}");
    if config.bypass_layers {
        println!(
            "layers bypassed (--bypass-layers): /api/data calls the downstream directly, with no rate limit, bulkhead, retry, breaker or timeout"
        );
    }
    let _ = std::io::stdout().flush();
    let metrics = state.metrics.clone();
    server::serve(listener, app, server_limits, metrics, signals).await;
    Ok(())
}
