//! The checked policy model.
//!
//! **API boundary:** this module is what the verifier, the backends, the LSP and the
//! enforcement crate rely on. Everything here is resolved: names are indices, host
//! names are lower-cased label sequences, CIDRs are validated, durations are seconds.
//! A [`CheckedPolicy`] can only be built by [`crate::check`], so an unchecked policy
//! can never reach a backend.

use std::collections::BTreeMap;
use std::fmt;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

pub use egress_syntax::{FileId, Span};

macro_rules! id_type {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub struct $name(pub u32);
        impl $name {
            /// The index of this item in its vector in [`CheckedPolicy`].
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}

id_type!(
    DestId,
    CapId,
    AgentId,
    WorkflowId,
    ExceptionId,
    AuthorityId,
    ZoneId,
    DataClassId,
    SyscallGroupId,
    CapSetId,
    AssertId,
);

/// A source file that took part in checking.
#[derive(Clone, Debug, Serialize)]
pub struct SourceFile {
    pub id: FileId,
    /// The path as given (relative to the project root where possible), `std/...` for the stdlib.
    pub path: String,
    /// The dotted module name: `std.dns`, or the path without extension for project files.
    pub module: String,
    pub is_stdlib: bool,
}

/// A fully resolved and validated policy. Only the checker can construct one.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedPolicy {
    pub files: Vec<SourceFile>,
    pub data_classes: Vec<DataClass>,
    pub destinations: Vec<Destination>,
    pub capabilities: Vec<Capability>,
    pub agents: Vec<Agent>,
    pub workflows: Vec<Workflow>,
    pub exceptions: Vec<Exception>,
    pub authorities: Vec<Authority>,
    pub zones: Vec<Zone>,
    pub syscall_groups: Vec<SyscallGroup>,
    pub cap_sets: Vec<CapSet>,
    pub asserts: Vec<Assertion>,
    #[serde(skip)]
    pub(crate) _sealed: Sealed,
}

/// Makes [`CheckedPolicy`] impossible to construct outside this crate.
#[derive(Clone, Debug, Default)]
pub struct Sealed(());

impl CheckedPolicy {
    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }
    pub fn destination(&self, id: DestId) -> Option<&Destination> {
        self.destinations.get(id.index())
    }
    pub fn capability(&self, id: CapId) -> Option<&Capability> {
        self.capabilities.get(id.index())
    }
    pub fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(id.index())
    }
    pub fn workflow(&self, id: WorkflowId) -> Option<&Workflow> {
        self.workflows.get(id.index())
    }
    pub fn exception(&self, id: ExceptionId) -> Option<&Exception> {
        self.exceptions.get(id.index())
    }
    pub fn authority(&self, id: AuthorityId) -> Option<&Authority> {
        self.authorities.get(id.index())
    }
    pub fn zone(&self, id: ZoneId) -> Option<&Zone> {
        self.zones.get(id.index())
    }
    pub fn data_class(&self, id: DataClassId) -> Option<&DataClass> {
        self.data_classes.get(id.index())
    }
    pub fn syscall_group(&self, id: SyscallGroupId) -> Option<&SyscallGroup> {
        self.syscall_groups.get(id.index())
    }
    pub fn cap_set(&self, id: CapSetId) -> Option<&CapSet> {
        self.cap_sets.get(id.index())
    }
    pub fn agent_by_name(&self, name: &str) -> Option<&Agent> {
        self.agents
            .iter()
            .find(|a| a.name.qualified == name || a.name.local == name)
    }
    pub fn exception_by_name(&self, name: &str) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|e| e.name.qualified == name || e.name.local == name)
    }
    /// The agents the given agent is listed for in zones (its approvals).
    pub fn zones_of(&self, agent: AgentId) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(move |z| z.applies_to(agent))
    }
    /// All syscalls granted to an agent through its capabilities' syscall groups, sorted.
    pub fn syscalls_of(&self, agent: &Agent) -> Vec<String> {
        let mut out: Vec<String> = agent
            .capabilities
            .iter()
            .filter_map(|c| self.capability(c.id))
            .flat_map(|c| c.syscall_groups.iter())
            .filter_map(|g| self.syscall_group(*g))
            .flat_map(|g| g.syscalls.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// All Linux capabilities granted to an agent, sorted.
    pub fn linux_caps_of(&self, agent: &Agent) -> Vec<LinuxCap> {
        let mut out: Vec<LinuxCap> = agent
            .capabilities
            .iter()
            .filter_map(|c| self.capability(c.id))
            .flat_map(|c| c.linux_caps.iter().map(|g| g.cap))
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// The capabilities an agent can use, in id order: those it `uses` without a
    /// `workflows` list, and those a step of a workflow lets it use (`step AGENT uses CAP`
    /// where `CAP` lists that workflow or none). A capability limited to workflows that no
    /// step of the agent uses is left out, as its connections are.
    pub fn usable_capabilities(&self, agent: &Agent) -> Vec<CapId> {
        let mut out: Vec<CapId> = agent
            .capabilities
            .iter()
            .filter(|c| {
                self.capability(c.id)
                    .is_some_and(|c| c.workflows.is_empty())
            })
            .map(|c| c.id)
            .collect();
        for workflow in &self.workflows {
            for step in &workflow.steps {
                let StepAction::Uses(used) = &step.action else {
                    continue;
                };
                if step.agent != agent.id {
                    continue;
                }
                if self.capability(used.id).is_some_and(|c| {
                    c.workflows.is_empty() || c.workflows.iter().any(|w| w.id == workflow.id)
                }) {
                    out.push(used.id);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
    /// The local (Unix domain) sockets an agent may use, by path: the `unix` entries of
    /// the capabilities it can use ([`CheckedPolicy::usable_capabilities`]), sorted and
    /// deduplicated. Empty means the agent may not use Unix sockets at all.
    pub fn unix_sockets_of(&self, agent: &Agent) -> Vec<String> {
        let mut out: Vec<String> = self
            .usable_capabilities(agent)
            .into_iter()
            .filter_map(|c| self.capability(c))
            .flat_map(|c| c.unix_sockets.iter().map(|u| u.path.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// The Linux capabilities the zones of an agent approve (`approve grant ...`), sorted.
    pub fn approved_linux_caps(&self, agent: AgentId) -> Vec<LinuxCap> {
        let mut out: Vec<LinuxCap> = self
            .zones_of(agent)
            .flat_map(|z| z.approve_caps.iter().map(|a| a.cap))
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// The local socket paths the zones of an agent approve (`approve unix ...`), sorted.
    pub fn approved_unix_sockets(&self, agent: AgentId) -> Vec<String> {
        let mut out: Vec<String> = self
            .zones_of(agent)
            .flat_map(|z| z.approve_unix.iter().map(|u| u.path.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// Destinations an agent may connect to directly through its capabilities,
    /// with the capability that grants each one (no delegation, no exceptions).
    pub fn direct_destinations(&self, agent: &Agent) -> Vec<(CapId, DestId)> {
        let mut out = Vec::new();
        for granted in &agent.capabilities {
            if let Some(cap) = self.capability(granted.id) {
                for connect in &cap.connects {
                    out.push((cap.id, connect.dest));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A declared name: its local spelling, its module-qualified spelling and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Name {
    /// As written in the declaring file, e.g. `kube_dns`.
    pub local: String,
    /// Qualified with the module, e.g. `std.dns.kube_dns`.
    pub qualified: String,
    /// The span of the name token in the declaration.
    pub span: Span,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.local)
    }
}

/// A reference from one item to another, keeping the span of the reference for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ref<T> {
    pub id: T,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataClass {
    pub id: DataClassId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
}

/// A named endpoint set: every combination of an endpoint, a port range and a protocol.
#[derive(Clone, Debug, Serialize)]
pub struct Destination {
    pub id: DestId,
    pub name: Name,
    /// The whole declaration (or the inline `{ ... }` block).
    pub span: Span,
    pub doc: Option<String>,
    /// True for a destination written inline in an exception or an assertion.
    pub inline: bool,
    pub endpoints: Vec<Endpoint>,
    /// Sorted, merged, non-empty.
    pub ports: Vec<PortRange>,
    /// Sorted, deduplicated, non-empty (defaults to `tcp`).
    pub protocols: Vec<Protocol>,
    /// `sni optional`: the run-time gate also lets through a connection to a learned
    /// address of this destination's hosts that names no host (no SNI, no `Host` header,
    /// or an encrypted ClientHello). The verifier's sets do not change.
    pub sni_optional: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    pub kind: EndpointKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum EndpointKind {
    Host(HostPattern),
    Cidr(CidrSet),
    Workload(WorkloadSelector),
}

/// A host name or a wildcard host pattern, as lower-case labels from left to right,
/// without a trailing dot.
///
/// Pinned meaning: [`HostLabel::One`] (`*`) is exactly one label, [`HostLabel::OneOrMore`]
/// (`**`) is one or more labels and may only be the leftmost label. A wildcard never
/// matches the empty label sequence, so `*.example.com` does not match `example.com`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HostPattern {
    pub labels: Vec<HostLabel>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum HostLabel {
    Exact(String),
    /// `*`: exactly one label.
    One,
    /// `**`: one or more labels.
    OneOrMore,
}

impl HostPattern {
    pub fn is_exact(&self) -> bool {
        self.labels.iter().all(|l| matches!(l, HostLabel::Exact(_)))
    }

    /// Does the concrete host name `host` match this pattern? `host` is compared
    /// case-insensitively and a trailing dot is ignored.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() {
            return false;
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return false;
        }
        match_labels(&self.labels, &labels)
    }
}

fn match_labels(pattern: &[HostLabel], host: &[&str]) -> bool {
    match (pattern.split_first(), host.split_first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((HostLabel::Exact(want), rest)), Some((got, host_rest))) => {
            want == got && match_labels(rest, host_rest)
        }
        (Some((HostLabel::One, rest)), Some((_, host_rest))) => match_labels(rest, host_rest),
        (Some((HostLabel::OneOrMore, rest)), Some(_)) => {
            // `**` consumes one or more labels; only the leftmost label may be `**`,
            // so the remaining pattern has a fixed length.
            let fixed = rest.len();
            if host.len() <= fixed {
                return false;
            }
            let skip = host.len() - fixed;
            host.get(skip..)
                .is_some_and(|tail| match_labels(rest, tail))
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match label {
                HostLabel::Exact(s) => f.write_str(s)?,
                HostLabel::One => f.write_str("*")?,
                HostLabel::OneOrMore => f.write_str("**")?,
            }
        }
        Ok(())
    }
}

/// An IP network with exclusions. All networks have their host bits clear and the
/// exclusions are of the same family and inside `network`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CidrSet {
    #[serde(serialize_with = "ser_display")]
    pub network: IpNet,
    #[serde(serialize_with = "ser_display_vec")]
    pub except: Vec<IpNet>,
}

impl CidrSet {
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        self.network.contains(&addr) && !self.except.iter().any(|e| e.contains(&addr))
    }
}

fn ser_display<S: serde::Serializer, T: fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_display_vec<S: serde::Serializer, T: fmt::Display>(
    v: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

/// In-cluster workloads selected by namespace and labels (all labels must match).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WorkloadSelector {
    pub namespace: String,
    pub labels: Labels,
}

impl WorkloadSelector {
    /// Does a workload with this namespace and these labels match the selector?
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|got| got == v))
    }
}

/// Workload labels, a map from key to value kept as a vector sorted by key, each key
/// once: a selector has one or a few labels, and a `BTreeMap` would take a 544-byte node
/// for one. It orders, compares, prints (`Debug`) and serializes as a `BTreeMap` does.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(i) => self.0.get_mut(i).map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The labels in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes `key`; the value it had, if any.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
        Some(self.0.remove(i).1)
    }

    /// The same labels as a `BTreeMap` (what Kubernetes types hold).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

impl FromIterator<(String, String)> for Labels {
    /// Later values win for a repeated key, as for a `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Labels {
        let mut labels = Labels::new();
        labels.extend(iter);
        labels
    }
}

impl Extend<(String, String)> for Labels {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Labels {
        // Already sorted by key, each key once.
        Labels(map.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        fn pair((k, v): &(String, String)) -> (&String, &String) {
            (k, v)
        }
        self.0.iter().map(pair)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl fmt::Display for WorkloadSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "namespace {}", self.namespace)?;
        for (k, v) in &self.labels {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// An inclusive port range; `start <= end`, both in 1..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}..{}", self.start, self.end)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named grant.
#[derive(Clone, Debug, Serialize)]
pub struct Capability {
    pub id: CapId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    /// Destinations this capability may connect to.
    pub connects: Vec<Connect>,
    pub syscall_groups: Vec<SyscallGroupId>,
    /// Linux capabilities granted, each with where it came from.
    pub linux_caps: Vec<CapGrant>,
    /// When non-empty, the capability is usable only within these workflows.
    pub workflows: Vec<Ref<WorkflowId>>,
    /// Local (Unix domain) sockets the capability may use, by path (`unix "/run/x.sock"`),
    /// in the order written, without duplicates.
    pub unix_sockets: Vec<UnixSocket>,
    /// `justified_by sbom`: the capability fetches what the SBOM declares, so every
    /// destination it allows must be a host the SBOM names (`egc verify --sbom`). The span
    /// of the entry.
    pub justified_by_sbom: Option<Span>,
}

/// A local socket named by its absolute path, with where it was named. Paths are
/// validated: absolute, at most [`MAX_UNIX_PATH_BYTES`] bytes, no NUL, no `.` or `..`
/// component, no empty component; abstract sockets cannot be named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnixSocket {
    pub path: String,
    /// The span of the string literal.
    pub span: Span,
}

/// The longest socket path Linux accepts: `sun_path` is 108 bytes with the final NUL.
pub const MAX_UNIX_PATH_BYTES: usize = 107;

/// One Linux capability granted by a capability's `grant` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CapGrant {
    pub cap: LinuxCap,
    /// The span of the name in the `grant` entry (the literal or the capability set).
    pub span: Span,
    /// `None` when named literally (`grant CAP_NET_RAW`, an explicit grant); the
    /// capability set it came from otherwise.
    pub via: Option<CapSetId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Connect {
    pub dest: DestId,
    /// The span of the reference in the `connect` entry.
    pub span: Span,
}

impl Capability {
    /// Does this capability open network connections?
    pub fn is_network(&self) -> bool {
        !self.connects.is_empty()
    }
}

/// A Linux capability by number, as in `linux/capability.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LinuxCap(pub u8);

impl LinuxCap {
    pub const NET_ADMIN: LinuxCap = LinuxCap(12);
    pub const NET_RAW: LinuxCap = LinuxCap(13);
    pub const SYS_MODULE: LinuxCap = LinuxCap(16);
    pub const SYS_PTRACE: LinuxCap = LinuxCap(19);
    pub const SYS_ADMIN: LinuxCap = LinuxCap(21);
    pub const BPF: LinuxCap = LinuxCap(39);

    /// Does this capability let a process get past egc's enforcement (raw sockets,
    /// firewall and routing changes, namespaces and mounts, BPF programs, other
    /// processes' memory, kernel modules)? Such a capability needs a zone's approval
    /// (`approve grant ...`), not only the author's `grant`.
    pub fn bypasses_enforcement(self) -> bool {
        BYPASS_CAPS.contains(&self)
    }

    pub fn name(self) -> &'static str {
        LINUX_CAPS
            .get(self.0 as usize)
            .copied()
            .unwrap_or("CAP_UNKNOWN")
    }

    pub fn from_name(name: &str) -> Option<LinuxCap> {
        LINUX_CAPS
            .iter()
            .position(|c| *c == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(LinuxCap)
    }

    pub fn all() -> impl Iterator<Item = LinuxCap> {
        (0..LINUX_CAPS.len()).filter_map(|i| u8::try_from(i).ok().map(LinuxCap))
    }
}

impl fmt::Display for LinuxCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The Linux capabilities that bypass enforcement, in number order (see
/// [`LinuxCap::bypasses_enforcement`]).
pub const BYPASS_CAPS: &[LinuxCap] = &[
    LinuxCap::NET_ADMIN,
    LinuxCap::NET_RAW,
    LinuxCap::SYS_MODULE,
    LinuxCap::SYS_PTRACE,
    LinuxCap::SYS_ADMIN,
    LinuxCap::BPF,
];

/// Unspecified and "this network" addresses: `0.0.0.0/8`, `::/128` and their
/// IPv4-mapped form `::ffff:0.0.0.0/104`. On Linux, `connect` to such an address reaches
/// a listener on the local host, so they are never reachable, whatever a policy says:
/// the verifier reports a policy that allows them (property `no-unspecified`), and every
/// backend and the runtime subtract them from what they allow.
pub const UNSPECIFIED_NETWORKS: &[IpNet] = &[
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8)),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        104,
    )),
];

/// Is the address in [`UNSPECIFIED_NETWORKS`]?
pub fn is_unspecified(addr: IpAddr) -> bool {
    UNSPECIFIED_NETWORKS.iter().any(|n| n.contains(&addr))
}

/// Linux capability names, indexed by their number.
pub const LINUX_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[derive(Clone, Debug, Serialize)]
pub struct SyscallGroup {
    pub id: SyscallGroupId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    /// Sorted, deduplicated syscall names.
    pub syscalls: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapSet {
    pub id: CapSetId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    pub caps: Vec<LinuxCap>,
}

/// The identity of an agent: how enforcement points recognise its traffic.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Identity {
    pub workload: Option<WorkloadSelector>,
    /// `sha256:<64 hex>`.
    pub image: Option<String>,
    /// `sha256:<64 hex>` of each program (or interpreted script) `egc run` may start as
    /// this agent; empty: any.
    pub executables: Vec<String>,
    /// A cgroup v2 path relative to the cgroup root, e.g. `/agents/invoice-bot`.
    pub cgroup: Option<String>,
    pub uid: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Agent {
    pub id: AgentId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    pub identity: Identity,
    pub capabilities: Vec<Ref<CapId>>,
    /// The data classes the agent handles itself.
    pub handles: Vec<Ref<DataClassId>>,
    pub invokes: Vec<Invocation>,
}

/// Agent `from` may invoke `callee`. Data classes travel along the edge.
#[derive(Clone, Debug, Serialize)]
pub struct Invocation {
    pub callee: AgentId,
    pub span: Span,
    /// `None`: every class the invoker holds travels (the conservative default);
    /// `Some(list)`: only these classes travel.
    pub passing: Option<Vec<Ref<DataClassId>>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    /// The authority whose key signs step tokens (`egc workflow grant`); `None`: the
    /// workflow's steps cannot be granted at run time.
    pub orchestrator: Option<Ref<AuthorityId>>,
    /// Step tokens apply only in the order of the steps.
    pub ordered: bool,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub span: Span,
    pub agent: AgentId,
    pub action: StepAction,
}

#[derive(Clone, Debug, Serialize)]
pub enum StepAction {
    Uses(Ref<CapId>),
    Invokes {
        callee: Ref<AgentId>,
        passing: Vec<Ref<DataClassId>>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Authority {
    pub id: AuthorityId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    /// Raw ed25519 public key bytes.
    pub key: [u8; 32],
    /// The longest token lifetime this authority may sign, in seconds.
    pub max_ttl_secs: u64,
}

/// An audited path for a legally mandated call.
#[derive(Clone, Debug, Serialize)]
pub struct Exception {
    pub id: ExceptionId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    pub agents: Vec<Ref<AgentId>>,
    /// The destination pattern that bounds every run-time destination.
    pub to: Ref<DestId>,
    pub approver: Ref<AuthorityId>,
    pub max_ttl_secs: u64,
    pub max_ttl_span: Span,
    /// How many connections a single token may open (`None`: unbounded within its lifetime).
    pub max_uses: Option<u32>,
    pub audit: Ref<DestId>,
    pub legal_basis: String,
}

/// The language-wide ceiling on an exception's token lifetime: 24 hours.
pub const MAX_EXCEPTION_TTL_SECS: u64 = 24 * 60 * 60;

/// Approvals owned by a security team: which destinations the listed agents may reach
/// and which data classes may travel to which destinations.
#[derive(Clone, Debug, Serialize)]
pub struct Zone {
    pub id: ZoneId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    pub owner: Option<String>,
    pub agents: ZoneAgents,
    pub approve: Vec<Ref<DestId>>,
    /// `approve grant CAP_...`: Linux capabilities the zone's agents may be granted.
    pub approve_caps: Vec<CapApproval>,
    /// `approve unix "/path"`: local sockets the zone's agents may use.
    pub approve_unix: Vec<UnixSocket>,
    pub clearances: Vec<Clearance>,
}

/// One Linux capability a zone approves, with the span of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CapApproval {
    pub cap: LinuxCap,
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub enum ZoneAgents {
    /// `agents *`: every agent of the policy.
    All(Span),
    Listed(Vec<Ref<AgentId>>),
}

impl Zone {
    pub fn applies_to(&self, agent: AgentId) -> bool {
        match &self.agents {
            ZoneAgents::All(_) => true,
            ZoneAgents::Listed(list) => list.iter().any(|a| a.id == agent),
        }
    }
}

/// `clear CLASS to DEST, ...`
#[derive(Clone, Debug, Serialize)]
pub struct Clearance {
    pub class: Ref<DataClassId>,
    pub to: Vec<Ref<DestId>>,
    pub span: Span,
}

/// A user property, proven by the verifier.
#[derive(Clone, Debug, Serialize)]
pub struct Assertion {
    pub id: AssertId,
    pub name: Name,
    pub span: Span,
    pub doc: Option<String>,
    pub claims: Vec<Claim>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Claim {
    pub span: Span,
    pub kind: ClaimKind,
}

#[derive(Clone, Debug, Serialize)]
pub enum ClaimKind {
    /// `agent A cannot reach D` (or `agent * cannot reach D`): no connection of A, by any
    /// path, lies in D.
    CannotReach { agent: AgentSel, dest: Ref<DestId> },
    /// `agent A can reach D`: some connection of D is reachable by A (without exceptions).
    CanReach { agent: AgentSel, dest: Ref<DestId> },
    /// `data C never reaches D`: no agent holding C can reach a connection in D.
    NeverReaches {
        class: Ref<DataClassId>,
        dest: Ref<DestId>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub enum AgentSel {
    All(Span),
    One(Ref<AgentId>),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `Labels` behaves as the `BTreeMap` it replaces: the same answers to every
    /// operation, the same order, `Debug`, JSON and ordering between values, over a
    /// deterministic stream of inserts and removals of a few keys.
    #[test]
    fn labels_behave_as_a_btree_map() {
        let keys = ["app", "tier", "a", "zone", "app-x", "b"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut earlier: Vec<(Labels, BTreeMap<String, String>)> = Vec::new();
        let (mut labels, mut map) = (Labels::new(), BTreeMap::new());
        for step in 0..2_000 {
            let key = keys[(next() % keys.len() as u64) as usize].to_string();
            let value = format!("v{}", next() % 3);
            if next() % 4 == 0 {
                assert_eq!(labels.remove(&key), map.remove(&key), "step {step}");
            } else {
                assert_eq!(
                    labels.insert(key.clone(), value.clone()),
                    map.insert(key.clone(), value),
                    "step {step}"
                );
            }
            assert_eq!(labels.get(&key), map.get(&key));
            assert_eq!(labels.contains_key(&key), map.contains_key(&key));
            assert_eq!(labels.len(), map.len());
            assert!(labels.iter().eq(map.iter()));
            assert!(labels.keys().eq(map.keys()));
            assert_eq!(labels.to_map(), map);
            assert_eq!(Labels::from(map.clone()), labels);
            assert_eq!(format!("{labels:?}"), format!("{map:?}"));
            let hash = |value: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                use std::hash::Hasher as _;
                let mut h = std::collections::hash_map::DefaultHasher::new();
                value(&mut h);
                h.finish()
            };
            assert_eq!(
                hash(&|h| std::hash::Hash::hash(&labels, h)),
                hash(&|h| std::hash::Hash::hash(&map, h))
            );
            assert_eq!(
                serde_json::to_string(&labels).unwrap(),
                serde_json::to_string(&map).unwrap()
            );
            if step % 50 == 0 {
                earlier.push((labels.clone(), map.clone()));
            }
        }
        for (a, am) in &earlier {
            for (b, bm) in &earlier {
                assert_eq!(a.cmp(b), am.cmp(bm));
            }
        }
        // Repeated keys: the last value wins, as when collecting a map.
        let pairs =
            [("k", "1"), ("a", "2"), ("k", "3")].map(|(k, v)| (k.to_string(), v.to_string()));
        let collected: Labels = pairs.iter().cloned().collect();
        let expected: BTreeMap<String, String> = pairs.iter().cloned().collect();
        assert_eq!(collected.to_map(), expected);
    }
}
