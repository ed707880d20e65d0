//! The connection layer: accepts TCP connections and serves HTTP/1.1 on them through
//! hyper, with the limits a server open to hostile clients needs, and stops cleanly.
//!
//! | limit | flag | what it stops |
//! |---|---|---|
//! | connections open at once | `--max-connections` | exhausting file descriptors and memory |
//! | connections from one client IP | `--max-connections-per-ip` | one client taking every connection |
//! | time to send a request head | `--header-read-timeout` | connections that send nothing, or a byte at a time (slowloris) |
//! | time a kept-alive connection may stay silent | `--idle-timeout` | idle connections held forever |
//! | size of a request head | `--max-header-bytes` | unfinished large heads filling memory (hyper's read buffer is bounded by it) |
//!
//! A connection beyond a cap is closed as soon as it is accepted, so it holds no file
//! descriptor and no memory; a failed accept (the open-file limit reached) pauses the
//! accept loop for a moment instead of spinning. Each closure is counted in `/metrics`.
//!
//! The header-read timeout counts from the connection's opening, or from the first byte
//! of a later request on a kept-alive connection; the idle timeout counts from the end of
//! the last request, while no request is in flight and no byte of a new one has come.
//! (hyper's own header-read timer starts when it begins waiting for a head, idle or not,
//! so it cannot tell the two apart; a small watchdog per connection does.)
//!
//! On SIGTERM or SIGINT ([`Signals`]) the service stops accepting, asks every connection
//! to finish (hyper's graceful shutdown: requests in flight get their responses, with
//! `connection: close`; idle connections close at once), and waits at most
//! `--shutdown-timeout` for them, or until a second signal; whatever is still open then,
//! such as a request whose head never finished, is closed as the process exits.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use super::config::{Config, DisplayDuration};
use super::metrics::{ConnectionCap, ConnectionTimeout, Metrics};

/// How long the accept loop pauses after a failed accept (such as the open-file limit
/// reached), so that it does not spin while nothing can be accepted.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

/// The connection layer's settings (the flags of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// `--header-read-timeout`.
    pub header_read_timeout: Duration,
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
    /// `--max-header-bytes` (at least 8192: hyper's smallest read buffer).
    pub max_header_bytes: usize,
    /// `--max-connections`.
    pub max_connections: u32,
    /// `--max-connections-per-ip`.
    pub max_connections_per_ip: u32,
    /// `--shutdown-timeout`.
    pub shutdown_timeout: Duration,
}

impl ServerLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> ServerLimits {
        ServerLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_header_bytes: usize::try_from(config.max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(8192),
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

impl std::fmt::Display for ServerLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections: at most {} open, {} per client IP; request head within {}, at most {} bytes; idle connections closed after {}; shutdown waits up to {}",
            self.max_connections,
            self.max_connections_per_ip,
            DisplayDuration(self.header_read_timeout),
            self.max_header_bytes,
            DisplayDuration(self.idle_timeout),
            DisplayDuration(self.shutdown_timeout),
        )
    }
}

/// SIGTERM and SIGINT (Ctrl-C elsewhere than on Unix): the first asks the service to
/// drain, a second to stop waiting. The handlers are installed by [`Signals::new`], so
/// that a signal that comes before [`Signals::recv`] is polled is not lost (nor kills the
/// process).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    ///
    /// # Errors
    ///
    /// The signal handlers could not be installed.
    pub fn new() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal's name. Cancel-safe.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// How [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// The signal that stopped it.
    pub signal: &'static str,
    /// Connections open when the signal came.
    pub open_at_signal: usize,
    /// Connections still open when the shutdown timeout passed or a second signal came
    /// (0: all finished).
    pub cut: usize,
}

/// Serves `app` on `listener` within `limits` until the first of `signals`, then drains
/// the connections for at most the shutdown timeout, or until a second signal (see the
/// [module docs](self)).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    mut signals: Signals,
) -> Stopped {
    let caps = Arc::new(Caps::new(
        limits.max_connections,
        limits.max_connections_per_ip,
    ));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
        // The watchdog below keeps the header-read and idle timeouts.
        .header_read_timeout(None);
    let signal = loop {
        let accepted = tokio::select! {
            biased;
            signal = signals.recv() => break signal,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                metrics.accept_failed();
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                metrics.connection_refused(cap);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: activity.clone(),
        });
        // The app, with the peer's address for `ConnectInfo`, and each request counted
        // in flight for the watchdog.
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let in_flight = activity.request_started();
                request.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move {
                    let response = app.oneshot(request).await;
                    drop(in_flight);
                    response
                }
            })
        };
        let conn = graceful.watch(http.serve_connection(io, service));
        metrics.connection(true);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                timeout = activity.expiry(limits.header_read_timeout, limits.idle_timeout) => {
                    metrics.connection_timed_out(timeout);
                }
            }
            metrics.connection(false);
            drop(slot);
        });
    };
    drop(listener);
    let open_at_signal = caps.open();
    eprintln!(
        "service: {signal}: stopped accepting; waiting up to {} for {open_at_signal} connection(s) to finish",
        DisplayDuration(limits.shutdown_timeout)
    );
    let drained = tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown());
    let cut = tokio::select! {
        drained = drained => match drained {
            Ok(()) => {
                eprintln!("service: every connection finished; exiting");
                0
            }
            Err(_) => {
                let cut = caps.open().max(1);
                eprintln!(
                    "service: the shutdown timeout passed with {cut} connection(s) open; closing them and exiting"
                );
                cut
            }
        },
        again = signals.recv() => {
            let cut = caps.open();
            eprintln!(
                "service: {again} again: closing {cut} connection(s) without waiting, and exiting"
            );
            cut
        }
    };
    Stopped {
        signal,
        open_at_signal,
        cut,
    }
}

/// The caps on open connections: a permit of the total, and a count per client IP (an
/// entry only while that IP has a connection open, so the map is never larger than the
/// total cap).
struct Caps {
    total: Arc<Semaphore>,
    max_total: u32,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    max_per_ip: u32,
}

/// One admitted connection's place in the caps, given back when dropped.
struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Caps {
    fn new(max_total: u32, max_per_ip: u32) -> Caps {
        let permits = usize::try_from(max_total)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Caps {
            total: Arc::new(Semaphore::new(permits)),
            max_total,
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip,
        }
    }

    /// A slot for a connection from `ip`, or the cap it would pass. The per-IP cap is
    /// checked first, so that a client over its own cap never takes a place of the total.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, ConnectionCap> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let open = per_ip.get(&ip).copied().unwrap_or(0);
        if open >= self.max_per_ip {
            return Err(ConnectionCap::PerIp);
        }
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnectionCap::Total)?;
        per_ip.insert(ip, open.saturating_add(1));
        Ok(Slot {
            caps: self.clone(),
            ip,
            _permit: permit,
        })
    }

    /// Connections open now.
    fn open(&self) -> usize {
        usize::try_from(self.max_total)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.total.available_permits())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self
            .caps
            .per_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match per_ip.get_mut(&self.ip) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// No instant recorded.
const NONE: u64 = u64::MAX;

/// What one connection is doing, for its watchdog: requests in flight, when it last
/// became idle, and when the head it is reading began. Times are milliseconds since the
/// connection opened.
struct Activity {
    origin: Instant,
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    head_started: AtomicU64,
}

/// A request in flight on a connection, until dropped.
struct InFlight(Arc<Activity>);

impl Activity {
    /// A new connection: it waits for its first request head from now on.
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        millis(self.origin.elapsed())
    }

    /// Bytes came in: with no request in flight, they begin a request head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.head_started.compare_exchange(
                NONE,
                self.now(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// A request's head is complete and its handling starts.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when a timeout closes the connection: the head it is reading took longer
    /// than `header`, or it stayed idle longer than `idle`.
    async fn expiry(&self, header: Duration, idle: Duration) -> ConnectionTimeout {
        let (header, idle) = (millis(header), millis(idle));
        loop {
            let now = self.now();
            // The next instant at which a timeout could pass. A head that starts later
            // than `now` ends later than `now + header`, so waking then misses nothing.
            let wake = if self.in_flight.load(Ordering::Relaxed) > 0 {
                now.saturating_add(header.min(idle))
            } else {
                let head = self.head_started.load(Ordering::Relaxed);
                if head == NONE {
                    let deadline = self.idle_since.load(Ordering::Relaxed).saturating_add(idle);
                    if now >= deadline {
                        return ConnectionTimeout::Idle;
                    }
                    deadline.min(now.saturating_add(header))
                } else {
                    let deadline = head.saturating_add(header);
                    if now >= deadline {
                        return ConnectionTimeout::HeaderRead;
                    }
                    deadline
                }
            };
            let at = self
                .origin
                .checked_add(Duration::from_millis(wake))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::time::sleep_until(at).await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        }
    }
}

/// Whole milliseconds, rounded up, saturating.
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(NONE - 1)
}

/// A TCP stream that tells the watchdog when bytes come in.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_ip_first_and_give_places_back() {
        let caps = Arc::new(Caps::new(3, 2));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let a1 = caps.admit(a).unwrap();
        let a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(ConnectionCap::PerIp));
        assert_eq!(caps.open(), 2);
        let b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).err(), Some(ConnectionCap::Total));
        drop(a1);
        let b2 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(a).err(), Some(ConnectionCap::Total));
        drop((a2, b1, b2));
        assert_eq!(caps.open(), 0);
        assert!(caps.per_ip.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_tells_a_slow_head_from_an_idle_connection() {
        let (header, idle) = (Duration::from_secs(2), Duration::from_secs(10));
        // A fresh connection that sends nothing: the header-read timeout, from its opening.
        let a = Arc::new(Activity::new());
        let start = Instant::now();
        assert_eq!(a.expiry(header, idle).await, ConnectionTimeout::HeaderRead);
        assert_eq!(start.elapsed(), header);

        // A request, then silence: the idle timeout, from the request's end.
        let a = Arc::new(Activity::new());
        let in_flight = a.request_started();
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { a.expiry(header, idle).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(in_flight);
        let ended = Instant::now();
        assert_eq!(watchdog.await.unwrap(), ConnectionTimeout::Idle);
        assert_eq!(ended.elapsed(), idle);

        // Then a byte of a new request 5 s into the idle time: the header-read timeout
        // from that byte.
        let a = Arc::new(Activity::new());
        drop(a.request_started());
        let watchdog = tokio::spawn({
            let a = a.clone();
            async move { a.expiry(header, idle).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        a.bytes_read();
        let first_byte = Instant::now();
        assert_eq!(watchdog.await.unwrap(), ConnectionTimeout::HeaderRead);
        assert_eq!(first_byte.elapsed(), header);
    }

    #[test]
    fn millis_round_up_and_saturate() {
        assert_eq!(millis(Duration::from_nanos(1)), 1);
        assert_eq!(millis(Duration::from_millis(250)), 250);
        assert_eq!(millis(Duration::MAX), NONE - 1);
    }
}
