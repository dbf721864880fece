//! The kernel side of run-time name enforcement (`egress-gateway`): the attachment's
//! `learned` and `gate_clients` maps, and who owns a local socket.
//!
//! The gateway decides which names and addresses are allowed; this module only writes
//! its decisions into the eBPF maps the connect hooks read, and reads back where a
//! redirected connection was going.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use egress_check::{HostLabel, HostPattern, Protocol};
pub use egress_gateway::{Event, Layer};
use egress_gateway::{LearnedGrant, NameRule};

use crate::layout::{PortRule, MAX_RULES};
use crate::loader::{Attachment, Denial};
use crate::maps::{parse_ports, EbpfMaps};
use crate::rules::{mapped_octets, protocol_number, unmapped_addr};

/// Settings of the DNS gateway and name gate for one run.
#[derive(Clone, Debug)]
pub struct NamesConfig {
    /// The resolver allowed queries are forwarded to.
    pub upstream: std::net::SocketAddr,
    /// Learned addresses stay open for the answer's TTL, clamped to these bounds.
    pub ttl_min: std::time::Duration,
    pub ttl_max: std::time::Duration,
    /// Queries per second (token bucket) and burst.
    pub query_rate: u32,
    pub query_burst: u32,
}

impl NamesConfig {
    /// The documented defaults: TTL clamped to 5 s..300 s, 50 queries/s, burst 200.
    pub fn new(upstream: std::net::SocketAddr) -> NamesConfig {
        NamesConfig {
            upstream,
            ttl_min: std::time::Duration::from_secs(5),
            ttl_max: std::time::Duration::from_secs(300),
            query_rate: 50,
            query_burst: 200,
        }
    }
}

/// A running DNS gateway and name gate for one attachment, with the watcher that opens
/// and closes host exceptions' names in it. Dropping it stops both and closes every
/// learned address.
pub struct NamesService {
    pub gateway: std::sync::Arc<egress_gateway::Gateway>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl NamesService {
    pub fn dns_port(&self) -> u16 {
        self.gateway.dns_port
    }

    pub fn gate_port(&self) -> u16 {
        self.gateway.gate_port
    }
}

impl Drop for NamesService {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

/// How often the watcher reads the attachment's state for host exceptions.
const EXCEPTION_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The name rules of the host exceptions installed in an attachment (`egc exception
/// apply` writes them to its state): each lives until its token expires, and its grants
/// carry the token's slot.
pub fn exception_rules(state: &crate::state::AttachmentState) -> Vec<NameRule> {
    let mut rules = Vec::new();
    for active in &state.exceptions {
        for name in &active.names {
            let (Some(pattern), Some(ports)) =
                (parse_pattern(&name.pattern), parse_ports(&name.ports))
            else {
                continue;
            };
            rules.push(NameRule {
                pattern,
                destination: name.destination.clone(),
                protocols: vec![name.protocol],
                ports: vec![ports],
                until: Some(active.expires_unix),
                sni_optional: name.sni_optional,
                exception_slot: active.slot,
                audit_only: false,
            });
        }
    }
    rules
}

/// Starts the DNS gateway and name gate for an attachment's host-name destinations
/// (`maps.names`) and points the program at them (flags and ports in `config`).
pub fn start_gateway(
    attachment: &mut Attachment,
    cgroup: &Path,
    maps: &EbpfMaps,
    names: &NamesConfig,
    audit: bool,
) -> Result<(NamesService, std::sync::mpsc::Receiver<Event>), String> {
    let rules = name_rules(maps)?;
    let kernel = std::sync::Arc::new(KernelMaps::new(
        crate::loader::open(&attachment.name).map_err(|e| e.to_string())?,
        cgroup,
    ));
    let (sender, receiver) = std::sync::mpsc::channel();
    let gateway = egress_gateway::start(
        egress_gateway::GatewayConfig {
            agent: maps.agent.clone(),
            attachment: attachment.name.clone(),
            rules: rules.clone(),
            upstream: names.upstream,
            audit,
            ttl_min: names.ttl_min,
            ttl_max: names.ttl_max,
            query_rate: names.query_rate,
            query_burst: names.query_burst,
        },
        kernel,
        sender,
    )
    .map_err(|e| format!("DNS gateway: {e}"))?;
    let gateway = std::sync::Arc::new(gateway);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let gateway = std::sync::Arc::clone(&gateway);
        let stop = std::sync::Arc::clone(&stop);
        let name = attachment.name.clone();
        std::thread::Builder::new()
            .name("egc-names-exceptions".into())
            .spawn(move || {
                let mut current: Vec<NameRule> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(state) = crate::state::load(&name) {
                        let wanted = exception_rules(&state);
                        if wanted != current {
                            let mut all = rules.clone();
                            all.extend(wanted.iter().cloned());
                            gateway.set_rules(all);
                            current = wanted;
                        }
                    }
                    std::thread::sleep(EXCEPTION_POLL);
                }
            })
            .map_err(|e| format!("DNS gateway: {e}"))?
    };
    let service = NamesService {
        gateway,
        stop,
        watcher: Some(watcher),
    };
    attachment
        .set_names(service.dns_port(), service.gate_port(), audit)
        .map_err(|e| e.to_string())?;
    Ok((service, receiver))
}

/// [`egress_gateway::Kernel`] over one attachment's maps.
pub struct KernelMaps {
    attachment: Mutex<Attachment>,
    cgroup: PathBuf,
}

impl KernelMaps {
    pub fn new(attachment: Attachment, cgroup: &Path) -> KernelMaps {
        KernelMaps {
            attachment: Mutex::new(attachment),
            cgroup: cgroup.to_path_buf(),
        }
    }
}

/// Port rules for a learned address: merged, sorted; `None` when more than the map holds
/// (the address is then not learned at all: narrower, never wider).
pub fn learned_rules(grants: &[LearnedGrant]) -> Option<Vec<PortRule>> {
    let mut rules: Vec<PortRule> = grants
        .iter()
        .map(|g| PortRule {
            port_lo: g.port_lo.min(g.port_hi),
            port_hi: g.port_hi.max(g.port_lo),
            protocol: protocol_number(g.protocol),
            pad: 0,
            exception_slot: g.exception_slot,
        })
        .collect();
    rules.sort();
    rules.dedup();
    (rules.len() <= MAX_RULES).then_some(rules)
}

impl egress_gateway::Kernel for KernelMaps {
    fn set_learned(&self, addr: IpAddr, grants: &[LearnedGrant]) -> Result<(), String> {
        let rules = learned_rules(grants).ok_or_else(|| {
            format!("{addr}: more than {MAX_RULES} port rules; the address is not opened")
        })?;
        let mut attachment = self
            .attachment
            .lock()
            .map_err(|_| "attachment lock poisoned".to_string())?;
        let octets = mapped_octets(addr);
        attachment
            .set_learned(octets, &rules)
            .map_err(|e| e.to_string())
    }

    fn origin(&self, client: SocketAddr) -> Option<SocketAddr> {
        let v4 = match client.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        };
        let mut attachment = self.attachment.lock().ok()?;
        let origin = attachment.take_gate_origin(client.port(), v4)?;
        Some(SocketAddr::new(unmapped_addr(origin.addr), origin.port))
    }

    fn owner(&self, client: SocketAddr, protocol: Protocol) -> Option<(u32, String)> {
        socket_owner(&self.cgroup, client, protocol)
    }
}

/// The process in `cgroup` that owns the local socket bound to `local` (an unbound
/// wildcard address matches any address on that port).
pub fn socket_owner(cgroup: &Path, local: SocketAddr, protocol: Protocol) -> Option<(u32, String)> {
    let tables: [&str; 2] = match protocol {
        Protocol::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Protocol::Udp => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let mut inodes = Vec::new();
    for table in tables {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local_field), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let Some((addr, port)) = parse_proc_addr(local_field) else {
                continue;
            };
            if port == local.port()
                && (addr == local.ip() || addr.is_unspecified() || same_mapped(addr, local.ip()))
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).ok()?;
    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default();
                return Some((pid, comm));
            }
        }
    }
    None
}

fn same_mapped(a: IpAddr, b: IpAddr) -> bool {
    mapped_octets(a) == mapped_octets(b)
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6), as /proc/net prints them:
/// each 32-bit word in host byte order.
fn parse_proc_addr(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(8 * i..8 * i + 8)?, 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    let mut octets = Vec::new();
    for word in &words {
        octets.extend_from_slice(&word.to_ne_bytes());
    }
    match octets.len() {
        4 => {
            let bytes: [u8; 4] = octets.try_into().ok()?;
            Some((IpAddr::from(bytes), port))
        }
        16 => {
            let bytes: [u8; 16] = octets.try_into().ok()?;
            Some((IpAddr::from(bytes), port))
        }
        _ => None,
    }
}

/// A host pattern as written by [`HostPattern`]'s `Display` (`*.corp.example`).
pub fn parse_pattern(text: &str) -> Option<HostPattern> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    let labels = text
        .split('.')
        .map(|label| match label {
            "" => None,
            "*" => Some(HostLabel::One),
            "**" => Some(HostLabel::OneOrMore),
            exact => Some(HostLabel::Exact(exact.to_ascii_lowercase())),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(HostPattern { labels })
}

/// The gateway's rules for the agent's host-name destinations.
pub fn name_rules(maps: &EbpfMaps) -> Result<Vec<NameRule>, String> {
    maps.names
        .iter()
        .map(|record| {
            let pattern = parse_pattern(&record.pattern)
                .ok_or_else(|| format!("invalid host pattern {:?}", record.pattern))?;
            let ports = record
                .ports
                .iter()
                .map(|p| parse_ports(p).ok_or_else(|| format!("invalid ports {p:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(NameRule {
                pattern,
                destination: record.destination.clone(),
                protocols: record.protocols.clone(),
                ports,
                until: None,
                sni_optional: record.sni_optional,
                exception_slot: 0,
                audit_only: false,
            })
        })
        .collect()
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

/// One event as a JSON line: the event, with the kernel hook for kernel denials.
pub fn event_line(event: &Event, denial: Option<&Denial>) -> String {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let (Some(denial), Some(object)) = (denial, value.as_object_mut()) {
        object.insert("hook".into(), serde_json::Value::from(denial.hook));
    }
    serde_json::to_string(&value).unwrap_or_default()
}

/// The events of one attachment, as JSON lines, written by the process that serves it
/// (`egc run`, `egc enforce apply --serve-names`) and read by `egc enforce events`.
/// Under egc's state directory (mode 0600), out of the agent's reach.
pub struct EventLog {
    pub path: PathBuf,
    file: Option<std::fs::File>,
}

impl EventLog {
    /// The log of attachment `name`.
    pub fn path_for(name: &str) -> PathBuf {
        crate::state::state_dir()
            .join("events")
            .join(format!("{name}.jsonl"))
    }

    /// Creates (or truncates) the log of attachment `name`.
    pub fn create(name: &str) -> std::io::Result<EventLog> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = Self::path_for(name);
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        Ok(EventLog {
            path,
            file: Some(file),
        })
    }

    /// Appends one event (best effort: a full disk does not stop enforcement).
    pub fn append(&mut self, event: &Event, denial: Option<&Denial>) {
        use std::io::Write;
        if let Some(file) = self.file.as_mut() {
            let _ = writeln!(file, "{}", event_line(event, denial));
        }
    }

    /// Removes the log (when the attachment goes away).
    pub fn remove(name: &str) {
        let _ = std::fs::remove_file(Self::path_for(name));
    }
}

/// A kernel denial as the one event shape every layer shares.
pub fn denial_event(agent: &str, denial: &Denial, audit: bool) -> Event {
    let layer = match denial.hook {
        "sock_create" => Layer::Socket,
        "setsockopt" => Layer::Sockopt,
        "egress" => Layer::Packet,
        _ => Layer::Connect,
    };
    let addressed = layer == Layer::Connect;
    // No suggestion where an address would be the wrong fix: the unspecified address,
    // and UDP to an address learned for a name (names are reachable over TCP only).
    let suggestion = (addressed
        && denial.reason != "unspecified-address"
        && denial.reason != "udp-to-learned-address"
        && (denial.protocol == "tcp" || denial.protocol == "udp"))
        .then(|| {
            let prefix = if denial.destination.contains(':') {
                128
            } else {
                32
            };
            format!(
                "cidr {}/{prefix} port {}{}",
                denial.destination,
                denial.port,
                if denial.protocol == "udp" {
                    " protocol udp"
                } else {
                    ""
                }
            )
        });
    Event {
        format: Event::FORMAT.to_string(),
        time: now_seconds(),
        audit,
        agent: agent.to_string(),
        attachment: denial.attachment.clone(),
        pid: (denial.pid != 0).then_some(denial.pid),
        comm: (!denial.comm.is_empty()).then(|| denial.comm.clone()),
        name: None,
        address: addressed.then(|| denial.destination.clone()),
        port: addressed.then_some(denial.port),
        protocol: denial.protocol.clone(),
        layer,
        reason: denial.reason.to_string(),
        message: format!("{} refused by the {} hook", denial.reason, denial.hook),
        suggestion,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses() {
        let (addr, port) = parse_proc_addr("0100007F:1F90").unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(addr, IpAddr::from([127, 0, 0, 1]));
        }
        assert_eq!(port, 8080);
        let (addr, _) = parse_proc_addr("00000000000000000000000001000000:0035").unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(addr, "::1".parse::<IpAddr>().unwrap());
        }
        assert!(parse_proc_addr("zz:1").is_none());
    }

    #[test]
    fn patterns_round_trip() {
        for text in ["api.corp.test", "*.corp.test", "**.corp.test"] {
            assert_eq!(parse_pattern(text).unwrap().to_string(), text);
        }
        assert!(parse_pattern("a..b").is_none());
        assert!(parse_pattern("API.Corp.Test.")
            .unwrap()
            .matches("api.corp.test"));
    }

    #[test]
    fn learned_rules_merge_and_cap() {
        let grant = |port| LearnedGrant {
            protocol: Protocol::Tcp,
            port_lo: port,
            port_hi: port,
            exception_slot: 0,
        };
        assert_eq!(learned_rules(&[grant(443), grant(443)]).unwrap().len(), 1);
        let many: Vec<_> = (1..=40).map(grant).collect();
        assert!(learned_rules(&many).is_none());
    }
}
