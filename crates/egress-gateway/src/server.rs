//! Starting the gateway (DNS + gate) for one attachment.
//!
//! [`start`] binds every socket before it returns (so every error is the caller's to
//! report), then runs the DNS gateway, the gate and the expiry ticker on a
//! single-threaded tokio runtime in its own thread. The caller stays synchronous.
//!
//! Sockets: the DNS gateway listens on UDP and TCP at `127.0.0.1:dns_port` and
//! `[::1]:dns_port`, the gate on TCP at `127.0.0.1:gate_port` and `[::1]:gate_port`
//! (the same port on both families; on a host without `::1`, IPv4 only).
//!
//! Kernel calls ([`Kernel`]):
//! - `set_learned(addr, grants)` is called, before the DNS answer is sent to the agent,
//!   whenever an answer changes the grant set of an address; by the ticker (every
//!   250 ms) when grants expire, when a rule lapses or is removed with
//!   [`Gateway::set_rules`], and again for an address whose last call failed; and with an
//!   empty slice for every learned address when the gateway stops (drop or
//!   [`Gateway::shutdown`]).
//! - `origin(peer)` once per connection the gate accepts, with the agent socket's address
//!   as the gate sees it (the peer of the accepted connection).
//! - `owner(client, protocol)` only to fill in an event.
//!
//! The gateway's own upstream queries and spliced connections come from this process:
//! it must not run inside the agent's cgroup.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use egress_check::Protocol;

use crate::event::{Event, Layer};
use crate::learned::LearnedTable;
use crate::names::{NameRule, NameTable};

/// Ports and protocols one learned address may be reached on (through the gate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LearnedGrant {
    pub protocol: Protocol,
    pub port_lo: u16,
    pub port_hi: u16,
    /// 0: the policy's; otherwise the exception slot whose token opened the name (the
    /// kernel admits it only while the slot lives and has uses left).
    pub exception_slot: u16,
}

/// The kernel side, implemented by `egress-enforce` over the attachment's eBPF maps.
pub trait Kernel: Send + Sync + 'static {
    /// Sets what `addr` may be reached on through the gate (replacing earlier grants);
    /// an empty slice removes the address. Called whenever the set changes (answer,
    /// expiry, shutdown).
    fn set_learned(&self, addr: IpAddr, grants: &[LearnedGrant]) -> Result<(), String>;
    /// The original destination of a connection the gate accepted from `client` (the
    /// connect hook records it by the client's local port).
    fn origin(&self, client: SocketAddr) -> Option<SocketAddr>;
    /// The process (pid, comm) that owns the local socket `client` (for events).
    fn owner(&self, client: SocketAddr, protocol: Protocol) -> Option<(u32, String)>;
}

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub agent: String,
    pub attachment: String,
    pub rules: Vec<NameRule>,
    /// Where allowed queries go.
    pub upstream: SocketAddr,
    /// Audit mode: forward every name and splice every connection, but emit the events.
    pub audit: bool,
    pub ttl_min: Duration,
    pub ttl_max: Duration,
    /// Queries per second per agent (token bucket), and the burst.
    pub query_rate: u32,
    pub query_burst: u32,
}

/// A running gateway. Dropping it (or [`Gateway::shutdown`]) stops the runtime, closes
/// every socket and connection, and removes every learned address from the kernel.
pub struct Gateway {
    /// The port the DNS gateway listens on, at 127.0.0.1 and ::1 (UDP and TCP).
    pub dns_port: u16,
    /// The port the gate listens on, at 127.0.0.1 and ::1 (TCP).
    pub gate_port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Adds a rule (a host exception's name, with `until` its end) while running. An
    /// identical rule is not added twice.
    pub fn add_rule(&self, rule: NameRule) {
        lock(&self.shared.rules).add(rule);
    }

    /// Replaces the rules. Learned grants admitted only by rules no longer in the table
    /// are removed from the kernel before this returns.
    pub fn set_rules(&self, rules: Vec<NameRule>) {
        let mut table = lock(&self.shared.rules);
        table.rules = rules;
        let now = now_ms();
        lock(&self.shared.learned).sweep(self.shared.kernel.as_ref(), now, |r| {
            table.rules.contains(r)
        });
    }

    /// The rules now in the table.
    pub fn rules(&self) -> Vec<NameRule> {
        lock(&self.shared.rules).rules.clone()
    }

    /// Every learned address with its live grants (what the kernel was told).
    pub fn learned(&self) -> Vec<(IpAddr, Vec<LearnedGrant>)> {
        lock(&self.shared.learned).snapshot(now_ms())
    }

    /// Stops the gateway and waits for it: the same as dropping it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The thread clears the table when its runtime ends; if it could not run to
        // the end, this makes sure the kernel forgets every address.
        lock(&self.shared.learned).clear(self.shared.kernel.as_ref());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// State shared by the DNS gateway, the gate, the ticker and [`Gateway`].
pub(crate) struct Shared {
    pub agent: String,
    pub attachment: String,
    pub audit: bool,
    pub upstream: SocketAddr,
    pub ttl_min: Duration,
    pub ttl_max: Duration,
    pub gate_port: u16,
    pub rules: Mutex<NameTable>,
    pub learned: Mutex<LearnedTable>,
    pub kernel: Arc<dyn Kernel>,
    pub rate: Mutex<RateLimit>,
    events: std::sync::mpsc::Sender<Event>,
    /// Recently sent events, to fold repeats ([`REPEAT_WINDOW_MS`]).
    recent: Mutex<std::collections::HashMap<EventKey, u64>>,
}

type EventKey = (
    Layer,
    String,
    Option<String>,
    Option<String>,
    Option<u16>,
    Option<u32>,
    u16,
);

/// The same event (layer, reason, name, address, port, process) within this many
/// milliseconds of the last one is not sent again.
const REPEAT_WINDOW_MS: u64 = 1000;
/// Events remembered for folding repeats.
const RECENT_EVENTS: usize = 4096;

impl Shared {
    /// Sends one event (a closed receiver is not an error: nobody is listening).
    /// `client` and `protocol` name the agent's socket, for `pid` and `comm`.
    pub fn emit(
        &self,
        layer: Layer,
        reason: &str,
        audit: bool,
        client: SocketAddr,
        protocol: Protocol,
        fill: impl FnOnce(&mut Event),
    ) {
        let owner = self.kernel.owner(client, protocol);
        let mut event = Event {
            format: Event::FORMAT.to_string(),
            time: now_secs_f64(),
            audit,
            agent: self.agent.clone(),
            attachment: self.attachment.clone(),
            pid: owner.as_ref().map(|o| o.0),
            comm: owner.map(|o| o.1),
            name: None,
            address: None,
            port: None,
            protocol: protocol.as_str().to_string(),
            layer,
            reason: reason.to_string(),
            message: String::new(),
            suggestion: None,
        };
        fill(&mut event);
        // A resolver asks again (A and AAAA, each retried): the same refusal of the same
        // process within a second is one event.
        // DNS retries come from new sockets: folded by process. Every other refusal is
        // a connection of its own: folded only with itself (its client port).
        let client_port = if layer == Layer::Dns {
            0
        } else {
            client.port()
        };
        let key = (
            event.layer,
            event.reason.clone(),
            event.name.clone(),
            event.address.clone(),
            event.port,
            event.pid,
            client_port,
        );
        let now = now_ms();
        {
            let mut recent = lock(&self.recent);
            if recent
                .get(&key)
                .is_some_and(|t| now.saturating_sub(*t) < REPEAT_WINDOW_MS)
            {
                return;
            }
            if recent.len() >= RECENT_EVENTS {
                recent.retain(|_, t| now.saturating_sub(*t) < REPEAT_WINDOW_MS);
            }
            if recent.len() < RECENT_EVENTS {
                recent.insert(key, now);
            }
        }
        let _ = self.events.send(event);
    }

    /// The learned expiry for a record TTL (seconds): now + clamp(ttl, ttl_min, ttl_max).
    pub fn expiry_ms(&self, ttl: u32, now_ms: u64) -> u64 {
        let ttl = Duration::from_secs(u64::from(ttl))
            .min(self.ttl_max)
            .max(self.ttl_min);
        now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
    }

    /// `ttl_max` in whole seconds, for capping the TTLs the agent sees.
    pub fn ttl_cap(&self) -> u32 {
        u32::try_from(self.ttl_max.as_secs()).unwrap_or(u32::MAX)
    }
}

/// The per-agent token bucket for DNS queries.
pub(crate) struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    last_event: Option<Instant>,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            tokens: f64::from(burst),
            last: Instant::now(),
            rate: f64::from(rate),
            burst: f64::from(burst),
            last_event: None,
        }
    }

    /// Takes one token. `Err(report)`: refused, and `report` says whether to emit the
    /// event (at most one a second).
    pub fn take(&mut self) -> Result<(), bool> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let report = self
            .last_event
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if report {
            self.last_event = Some(now);
        }
        Err(report)
    }
}

/// Locks a mutex; a poisoned lock (a panic elsewhere, which the lints rule out) still
/// yields the data, which every writer leaves consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// How often expired grants are removed.
const TICK: Duration = Duration::from_millis(250);
/// How many times to look for a port free on both 127.0.0.1 and ::1.
const BIND_ATTEMPTS: usize = 16;

/// Starts the gateway for one attachment: binds its sockets and runs it in its own thread.
///
/// Errors: an invalid config (`ttl_min > ttl_max`, `query_rate` or `query_burst` zero),
/// or a socket that could not be bound.
pub fn start(
    config: GatewayConfig,
    kernel: Arc<dyn Kernel>,
    events: std::sync::mpsc::Sender<Event>,
) -> std::io::Result<Gateway> {
    use std::io::{Error, ErrorKind};
    if config.ttl_min > config.ttl_max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "ttl_min exceeds ttl_max",
        ));
    }
    if config.query_rate == 0 || config.query_burst == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "query_rate and query_burst must be at least 1",
        ));
    }
    let (dns_port, udp, tcp) = bind_dns()?;
    let (gate_port, gate, sinks) = bind_gate()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Register the sockets with this runtime now, so errors reach the caller.
    let (udp, tcp, gate, sinks) = {
        let _guard = runtime.enter();
        let udp = udp
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::UdpSocket::from_std(s))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let tcp = tcp
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(s))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let gate = gate
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(s))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let sinks = sinks
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true)
                    .and_then(|()| tokio::net::UdpSocket::from_std(s))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        (udp, tcp, gate, sinks)
    };

    let shared = Arc::new(Shared {
        agent: config.agent,
        attachment: config.attachment,
        audit: config.audit,
        upstream: config.upstream,
        ttl_min: config.ttl_min,
        ttl_max: config.ttl_max,
        gate_port,
        rules: Mutex::new(NameTable::new(config.rules)),
        learned: Mutex::new(LearnedTable::default()),
        kernel,
        rate: Mutex::new(RateLimit::new(config.query_rate, config.query_burst)),
        events,
        recent: Mutex::new(std::collections::HashMap::new()),
    });

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("egc-gateway".into())
        .spawn(move || {
            let shared = thread_shared;
            runtime.block_on(async {
                for socket in udp {
                    tokio::spawn(crate::dns::serve_udp(Arc::clone(&shared), socket));
                }
                for listener in tcp {
                    tokio::spawn(crate::dns::serve_tcp(Arc::clone(&shared), listener));
                }
                for listener in gate {
                    tokio::spawn(crate::gate::serve(Arc::clone(&shared), listener));
                }
                for socket in sinks {
                    tokio::spawn(crate::gate::serve_udp_sink(Arc::clone(&shared), socket));
                }
                tokio::spawn(tick(Arc::clone(&shared)));
                // Either a stop or the Gateway dropped without sending.
                let _ = stop_rx.await;
            });
            // Ends every task (and closes every socket) before the table is cleared, so
            // nothing learns after it.
            drop(runtime);
            lock(&shared.learned).clear(shared.kernel.as_ref());
        })?;

    Ok(Gateway {
        dns_port,
        gate_port,
        shared,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Removes expired grants and lapsed rules every [`TICK`].
async fn tick(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = now_ms();
        let mut rules = lock(&shared.rules);
        rules.prune(now / 1000);
        lock(&shared.learned).sweep(shared.kernel.as_ref(), now, |r| {
            r.is_live(now / 1000) && (r.audit_only || rules.rules.contains(r))
        });
    }
}

/// Is `e` the error of binding an address the host does not have (no `::1`)?
fn no_such_address(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT
}

type DnsSockets = (u16, Vec<std::net::UdpSocket>, Vec<std::net::TcpListener>);

/// UDP and TCP on 127.0.0.1 and ::1, one port.
fn bind_dns() -> std::io::Result<DnsSockets> {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp4 = std::net::UdpSocket::bind(SocketAddr::new(v4, 0))?;
        let port = udp4.local_addr()?.port();
        let tcp4 = match std::net::TcpListener::bind(SocketAddr::new(v4, port)) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let udp6 = match std::net::UdpSocket::bind(SocketAddr::new(v6, port)) {
            Ok(s) => Some(s),
            Err(e) if no_such_address(&e) => None,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let tcp6 = match &udp6 {
            None => None,
            Some(_) => match std::net::TcpListener::bind(SocketAddr::new(v6, port)) {
                Ok(s) => Some(s),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            },
        };
        let udp = std::iter::once(udp4).chain(udp6).collect();
        let tcp = std::iter::once(tcp4).chain(tcp6).collect();
        return Ok((port, udp, tcp));
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port for the DNS gateway")))
}

type GateSockets = (u16, Vec<std::net::TcpListener>, Vec<std::net::UdpSocket>);

/// TCP on 127.0.0.1 and ::1, one port; and UDP on the same port: the sink that UDP
/// sockets connected to a learned address are sent to (held, so no other process can
/// bind it and receive their datagrams).
fn bind_gate() -> std::io::Result<GateSockets> {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let tcp4 = std::net::TcpListener::bind(SocketAddr::new(v4, 0))?;
        let port = tcp4.local_addr()?.port();
        let udp4 = match std::net::UdpSocket::bind(SocketAddr::new(v4, port)) {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let tcp6 = match std::net::TcpListener::bind(SocketAddr::new(v6, port)) {
            Ok(tcp6) => tcp6,
            Err(e) if no_such_address(&e) => return Ok((port, vec![tcp4], vec![udp4])),
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match std::net::UdpSocket::bind(SocketAddr::new(v6, port)) {
            Ok(udp6) => return Ok((port, vec![tcp4, tcp6], vec![udp4, udp6])),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port for the gate")))
}
