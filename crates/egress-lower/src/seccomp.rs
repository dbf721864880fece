//! OCI runtime-spec seccomp profiles (`linux.seccomp`), one per agent and native
//! architecture (x86_64, aarch64).
//!
//! - The default action is `SCMP_ACT_ERRNO` with `EPERM`; only the agent's syscall
//!   groups (from its capabilities, e.g. the stdlib's vetted baselines) are allowed.
//! - Only the native architecture is listed, so 32-bit compatibility syscalls (including
//!   `socketcall`, which multiplexes `socket`/`connect` and defeats argument filters) hit
//!   the default action.
//! - `socket` is filtered by its arguments: `AF_UNIX` only for agents that name local
//!   sockets (`unix "/path"` in a capability they can use; a local proxy or resolver is
//!   a way out, so Unix sockets are closed by default; which paths the agent can open is
//!   then up to the container's mount namespace, which a static profile cannot see);
//!   `AF_INET`/`AF_INET6` only for agents with an unconditional network capability, and
//!   only the socket types of the protocols they use (`SOCK_STREAM` with protocol 0 or
//!   TCP for `tcp`, `SOCK_DGRAM` with 0 or UDP for `udp`); `AF_NETLINK` route sockets for
//!   the same agents (address lookup); raw (`SOCK_RAW`) and packet (`AF_PACKET`) sockets
//!   only with a literal `grant CAP_NET_RAW` (a grant through a capability set leaves them
//!   closed, E0110). Without an inet socket, `connect`/`sendto`/`sendmsg` cannot reach
//!   the network.
//! - `io_uring_setup`, `io_uring_enter` and `io_uring_register` are never allowed (io_uring
//!   operations bypass seccomp); a group that lists them is narrowed (E0109).
//! - `ioctl`, when the agent's groups allow it, is allowed for every request except the
//!   terminal-injection ones in [`DENIED_IOCTLS`] (`TIOCSTI` pushes input into the
//!   terminal the agent inherited, which its owner's shell then runs). The kernel reads the
//!   request as 32 bits, so it is compared on the low 32 bits. The profile holds only
//!   ALLOW rules (the complement of the denied requests as masked comparisons), so it means
//!   the same whether a runtime applies the first matching rule or the union of matching
//!   allows; the denied requests fall to the default action, `EPERM`.

use std::collections::{BTreeMap, BTreeSet};

use egress_check::{Agent, CheckedPolicy, LinuxCap, Protocol};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::expected;
use crate::k8s::{to_json, undecodable};
use crate::{file_stem, Artifacts, Diagnostic, Target, TargetConfig, ValidationReport};

/// A native architecture a profile is emitted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
    fn oci(self) -> OciArch {
        match self {
            Arch::X86_64 => OciArch::ScmpArchX86_64,
            Arch::Aarch64 => OciArch::ScmpArchAarch64,
        }
    }
}

pub const EPERM: u32 = 1;
pub const AF_UNIX: u64 = 1;
pub const AF_INET: u64 = 2;
pub const AF_INET6: u64 = 10;
pub const AF_NETLINK: u64 = 16;
pub const AF_PACKET: u64 = 17;
pub const SOCK_STREAM: u64 = 1;
pub const SOCK_DGRAM: u64 = 2;
pub const SOCK_RAW: u64 = 3;
pub const SOCK_TYPE_MASK: u64 = 0xf;
pub const IPPROTO_TCP: u64 = 6;
pub const IPPROTO_UDP: u64 = 17;
pub const NETLINK_ROUTE: u64 = 0;

/// `ioctl` requests that are always denied (`EPERM`), with their names: `TIOCSTI` pushes
/// bytes into the input queue of a terminal, `TIOCLINUX` can paste the console selection,
/// so either lets an agent type commands into the shell that started it. The runtime
/// (`egress-enforce`) denies the same list. Compare on the low 32 bits: the kernel reads
/// the request as an `unsigned int`.
pub const DENIED_IOCTLS: &[(u64, &str)] = &[(0x5412, "TIOCSTI"), (0x541C, "TIOCLINUX")];

/// The mask under which `ioctl` requests are compared.
pub const IOCTL_REQUEST_MASK: u64 = 0xffff_ffff;

/// Is `ioctl(fd, request, ...)` one of the [`DENIED_IOCTLS`]?
pub fn ioctl_denied(request: u64) -> bool {
    DENIED_IOCTLS
        .iter()
        .any(|(denied, _)| request & IOCTL_REQUEST_MASK == *denied)
}

/// Syscalls never allowed, whatever the groups say.
pub const IO_URING: &[&str] = &["io_uring_enter", "io_uring_register", "io_uring_setup"];
/// Syscalls handled by argument filters (or absent on native architectures).
const FILTERED: &[&str] = &["socket", "socketcall"];

/// What an agent's profile allows, computed from the policy alone (the validator's
/// reference, independent of how rules are written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Syscalls allowed with any arguments, except `ioctl`, which is allowed for every
    /// request but the [`DENIED_IOCTLS`] (see [`Expectation::syscall_allowed`]).
    pub syscalls: BTreeSet<String>,
    pub network: bool,
    pub protocols: Vec<Protocol>,
    pub raw: bool,
    /// May the agent create `AF_UNIX` sockets? True iff it names local sockets
    /// ([`CheckedPolicy::unix_sockets_of`] is not empty).
    pub unix: bool,
}

impl Expectation {
    pub fn of(policy: &CheckedPolicy, agent: &Agent) -> Expectation {
        let syscalls = policy
            .syscalls_of(agent)
            .into_iter()
            .filter(|s| !IO_URING.contains(&s.as_str()) && !FILTERED.contains(&s.as_str()))
            .collect();
        Expectation {
            syscalls,
            network: expected::has_network(policy, agent),
            protocols: expected::protocols_of(policy, agent),
            raw: literal_net_raw(policy, agent),
            unix: !policy.unix_sockets_of(agent).is_empty(),
        }
    }

    /// Should `name(args)` be allowed, for a syscall other than `socket`?
    pub fn syscall_allowed(&self, name: &str, args: &[u64; 6]) -> bool {
        if !self.syscalls.contains(name) {
            return false;
        }
        let [_, request, ..] = *args;
        !(name == "ioctl" && ioctl_denied(request))
    }

    /// Should `socket(family, type, protocol)` be allowed?
    pub fn socket_allowed(&self, family: u64, socket_type: u64, protocol: u64) -> bool {
        let base_type = socket_type & SOCK_TYPE_MASK;
        match family {
            AF_UNIX => self.unix,
            AF_INET | AF_INET6 => {
                (self.raw && base_type == SOCK_RAW)
                    || (self.network
                        && ((self.protocols.contains(&Protocol::Tcp)
                            && base_type == SOCK_STREAM
                            && (protocol == 0 || protocol == IPPROTO_TCP))
                            || (self.protocols.contains(&Protocol::Udp)
                                && base_type == SOCK_DGRAM
                                && (protocol == 0 || protocol == IPPROTO_UDP))))
            }
            AF_NETLINK => self.network && protocol == NETLINK_ROUTE,
            AF_PACKET => self.raw,
            _ => false,
        }
    }
}

fn literal_net_raw(policy: &CheckedPolicy, agent: &Agent) -> bool {
    agent
        .capabilities
        .iter()
        .filter_map(|c| policy.capability(c.id))
        .flat_map(|c| c.linux_caps.iter())
        .any(|g| g.cap == LinuxCap::NET_RAW && g.via.is_none())
}

fn arg(index: usize, value: u64) -> LinuxSeccompArg {
    // Building cannot fail (every field is set); a default would be caught by validation.
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()
        .unwrap_or_default()
}

fn masked_arg(index: usize, mask: u64, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(mask)
        .value_two(value)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .unwrap_or_default()
}

fn rule(names: Vec<String>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names);
    r.set_action(LinuxSeccompAction::ScmpActAllow);
    if !args.is_empty() {
        r.set_args(Some(args));
    }
    r
}

/// Masked comparisons on the low 32 bits of argument `index` that together match exactly
/// the values whose low 32 bits are not in `denied`: a walk down the binary trie of the
/// denied values from the top bit, emitting one (mask, value) pattern for every branch
/// that holds no denied value. At most 32 patterns per denied value, in a fixed order.
fn complement_low32(index: usize, denied: &[u64]) -> Vec<LinuxSeccompArg> {
    fn walk(prefix: u64, bit: u32, values: &[u64], out: &mut Vec<(u64, u64)>) {
        if values.is_empty() || bit == 0 {
            return;
        }
        let b = bit - 1;
        let mask = (IOCTL_REQUEST_MASK << b) & IOCTL_REQUEST_MASK;
        for side in [0u64, 1] {
            let branch = prefix | (side << b);
            let inside: Vec<u64> = values
                .iter()
                .copied()
                .filter(|v| (v >> b) & 1 == side)
                .collect();
            if inside.is_empty() {
                out.push((mask, branch));
            } else {
                walk(branch, b, &inside, out);
            }
        }
    }
    let mut values: Vec<u64> = denied.iter().map(|v| v & IOCTL_REQUEST_MASK).collect();
    values.sort_unstable();
    values.dedup();
    let mut patterns = Vec::new();
    walk(0, 32, &values, &mut patterns);
    patterns
        .into_iter()
        .map(|(mask, value)| masked_arg(index, mask, value))
        .collect()
}

/// One condition on an argument of `socket(2)`: argument `index`, masked with `mask`
/// when given, equals `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCondition {
    pub index: u8,
    pub mask: Option<u64>,
    pub value: u64,
}

/// The `socket(2)` rules of an expectation: any one rule (all of its conditions) allows
/// the call. The one table both the static profile (`--target seccomp`) and `egc run`'s
/// filter are built from; `egc run` leaves out the `AF_UNIX` rule (it passes the named
/// sockets in instead).
pub fn socket_table(exp: &Expectation) -> Vec<Vec<ArgCondition>> {
    let eq = |index: u8, value: u64| ArgCondition {
        index,
        mask: None,
        value,
    };
    let socket_type = |value: u64| ArgCondition {
        index: 1,
        mask: Some(SOCK_TYPE_MASK),
        value,
    };
    let mut rules = Vec::new();
    if exp.unix {
        rules.push(vec![eq(0, AF_UNIX)]);
    }
    for family in [AF_INET, AF_INET6] {
        if exp.network {
            for protocol in &exp.protocols {
                let (base_type, ip_protocol) = match protocol {
                    Protocol::Tcp => (SOCK_STREAM, IPPROTO_TCP),
                    Protocol::Udp => (SOCK_DGRAM, IPPROTO_UDP),
                };
                for p in [0, ip_protocol] {
                    rules.push(vec![eq(0, family), socket_type(base_type), eq(2, p)]);
                }
            }
        }
        if exp.raw {
            rules.push(vec![eq(0, family), socket_type(SOCK_RAW)]);
        }
    }
    if exp.network {
        rules.push(vec![eq(0, AF_NETLINK), eq(2, NETLINK_ROUTE)]);
    }
    if exp.raw {
        rules.push(vec![eq(0, AF_PACKET)]);
    }
    rules
}

/// The syscall rules for one agent (the same on every native architecture).
fn rules_for(exp: &Expectation) -> Vec<LinuxSyscall> {
    let mut rules = Vec::new();
    let plain: Vec<String> = exp
        .syscalls
        .iter()
        .filter(|s| s.as_str() != "ioctl")
        .cloned()
        .collect();
    if !plain.is_empty() {
        rules.push(rule(plain, Vec::new()));
    }
    if exp.syscalls.contains("ioctl") {
        let denied: Vec<u64> = DENIED_IOCTLS.iter().map(|(v, _)| *v).collect();
        for pattern in complement_low32(1, &denied) {
            rules.push(rule(vec!["ioctl".to_string()], vec![pattern]));
        }
    }
    for conditions in socket_table(exp) {
        let args = conditions
            .iter()
            .map(|c| match c.mask {
                Some(mask) => masked_arg(usize::from(c.index), mask, c.value),
                None => arg(usize::from(c.index), c.value),
            })
            .collect();
        rules.push(rule(vec!["socket".to_string()], args));
    }
    rules
}

pub fn lower(policy: &CheckedPolicy, config: &TargetConfig) -> Result<Artifacts, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut files = BTreeMap::new();
    for agent in &policy.agents {
        let all = policy.syscalls_of(agent);
        if all.is_empty() {
            errors.push(
                Diagnostic::error(
                    "E0108",
                    agent.name.span,
                    format!(
                        "agent `{}` has no syscall groups, so its seccomp profile would deny every syscall",
                        agent.name.local
                    ),
                )
                .with_label("no `syscalls` in any capability it uses")
                .with_help("add a stdlib baseline, e.g. `syscalls sys.process_base` (after `import std.sys`) in a capability the agent uses"),
            );
            continue;
        }
        let io_uring: Vec<&String> = all
            .iter()
            .filter(|s| IO_URING.contains(&s.as_str()))
            .collect();
        if !io_uring.is_empty() {
            let names: Vec<&str> = io_uring.iter().map(|s| s.as_str()).collect();
            notes.push(
                Diagnostic::warning(
                    "E0109",
                    agent.name.span,
                    format!(
                        "the seccomp profile of agent `{}` leaves out {}: io_uring operations are not filtered by seccomp",
                        agent.name.local,
                        names.join(", ")
                    ),
                )
                .with_label("io_uring denied")
                .with_help("remove io_uring syscalls from the agent's syscall groups; they would bypass the socket filter"),
            );
        }
        let via_set = agent
            .capabilities
            .iter()
            .filter_map(|c| policy.capability(c.id))
            .flat_map(|c| c.linux_caps.iter())
            .find(|g| g.cap == LinuxCap::NET_RAW && g.via.is_some());
        let exp = Expectation::of(policy, agent);
        if let (Some(grant), false) = (via_set, exp.raw) {
            notes.push(
                Diagnostic::warning(
                    "E0110",
                    grant.span,
                    format!(
                        "the seccomp profile of agent `{}` keeps raw and packet sockets closed: CAP_NET_RAW comes from a capability set, not a literal grant",
                        agent.name.local
                    ),
                )
                .with_label("CAP_NET_RAW through a capability set")
                .with_help("write `grant CAP_NET_RAW` literally in the capability if the agent really needs raw sockets"),
            );
        }
        if !exp.network {
            // Conditional network access (workflows, exceptions) gets no inet sockets from
            // a static profile; say so.
            notes.extend(expected::static_narrowings(
                policy,
                agent,
                crate::Target::Seccomp,
            ));
        }
        let rules = rules_for(&exp);
        for arch in &config.seccomp.architectures {
            let mut profile = LinuxSeccomp::default();
            profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
            profile.set_default_errno_ret(Some(EPERM));
            profile.set_architectures(Some(vec![arch.oci()]));
            profile.set_syscalls(Some(rules.clone()));
            files.insert(
                format!("{}.{}.json", file_stem(&agent.name.local), arch.as_str()),
                to_json(&profile),
            );
        }
    }
    if errors.is_empty() {
        Ok(Artifacts { files, notes })
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------
// Decoding: an evaluator of OCI seccomp semantics.

/// An evaluator of one decoded profile.
pub struct Evaluator {
    profile: LinuxSeccomp,
    /// For each syscall name, the indices of the rules that name it, in order.
    by_name: BTreeMap<String, Vec<usize>>,
}

impl Evaluator {
    pub fn new(profile: LinuxSeccomp) -> Evaluator {
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in profile.syscalls().iter().flatten().enumerate() {
            for name in r.names() {
                by_name.entry(name.clone()).or_default().push(i);
            }
        }
        Evaluator { profile, by_name }
    }

    /// Is `name(args)` allowed? The first rule (in order) that names the syscall and whose
    /// argument conditions all hold decides; OCI runtimes give rules for one syscall the
    /// union of their allows when all are ALLOW.
    pub fn allows(&self, name: &str, args: &[u64; 6]) -> bool {
        let all = self.profile.syscalls().as_deref().unwrap_or_default();
        let rules = self
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|&i| all.get(i));
        for r in rules {
            let matched = r.args().iter().flatten().all(|a| {
                let Some(&v) = args.get(a.index()) else {
                    return false;
                };
                match a.op() {
                    LinuxSeccompOperator::ScmpCmpEq => v == a.value(),
                    LinuxSeccompOperator::ScmpCmpNe => v != a.value(),
                    LinuxSeccompOperator::ScmpCmpLt => v < a.value(),
                    LinuxSeccompOperator::ScmpCmpLe => v <= a.value(),
                    LinuxSeccompOperator::ScmpCmpGt => v > a.value(),
                    LinuxSeccompOperator::ScmpCmpGe => v >= a.value(),
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        v & a.value() == a.value_two().unwrap_or(0)
                    }
                }
            });
            if matched {
                return r.action() == LinuxSeccompAction::ScmpActAllow;
            }
        }
        self.profile.default_action() == LinuxSeccompAction::ScmpActAllow
    }

    pub fn named(&self) -> BTreeSet<String> {
        self.profile
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().iter().cloned())
            .collect()
    }
}

/// Sample socket arguments covering every family, type and protocol the filter cares about.
fn socket_domain() -> Vec<[u64; 6]> {
    let mut out = Vec::new();
    let flags = [0u64, 0o4000, 0o2000000];
    let types = [1u64, 2, 3, 4, 5, 6, 10];
    let protocols = [0u64, 1, 6, 17, 41, 58, 132, 255, 256, 0x0300];
    for family in 0..=46u64 {
        for t in types {
            for f in flags {
                for p in protocols {
                    out.push([family, t | f, p, 0, 0, 0]);
                }
            }
        }
    }
    out
}

/// Sample arguments for a syscall other than `socket`: three generic vectors, and for
/// `ioctl` every denied request with and without high bits set, their neighbours, and
/// requests that differ from them in one bit of the low 32.
fn syscall_domain(name: &str) -> Vec<[u64; 6]> {
    let mut out = vec![[0u64; 6], [u64::MAX; 6], [1, 2, 3, 4, 5, 6]];
    if name == "ioctl" {
        for (request, _) in DENIED_IOCTLS {
            let mut requests = vec![
                *request,
                request | (1 << 32),
                request | 0xffff_ffff_0000_0000,
                request.wrapping_sub(1),
                request + 1,
            ];
            requests.extend((0..32).map(|b| request ^ (1 << b)));
            for r in requests {
                out.push([0, r, 0, 0, 0, 0]);
            }
        }
        // Common terminal requests that must stay allowed: TCGETS, TIOCGWINSZ, FIONREAD.
        for r in [0x5401u64, 0x5413, 0x541B] {
            out.push([1, r, 0, 0, 0, 0]);
        }
    }
    out
}

/// Syscalls every validation asks about, whether or not a group names them.
const SENSITIVE: &[&str] = &[
    "bpf",
    "connect",
    "ioctl",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ptrace",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "socket",
    "socketcall",
    "socketpair",
];

/// A difference between a profile and its expectation: what, and whether it is wider.
type Problem = (String, bool);

/// Every difference between what a profile allows and what the expectation says, as
/// (description, whether the profile is wider). At most one wider and one narrower
/// `socket` call, and one entry per other syscall.
fn profile_problems(eval: &Evaluator, exp: &Expectation, domain: &[[u64; 6]]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut names: BTreeSet<String> = eval.named();
    names.extend(exp.syscalls.iter().cloned());
    names.extend(SENSITIVE.iter().map(|s| s.to_string()));
    for name in &names {
        if name == "socket" {
            let mut reported = [false, false];
            for args in domain {
                let [family, socket_type, protocol, ..] = *args;
                let got = eval.allows("socket", args);
                let want = exp.socket_allowed(family, socket_type, protocol);
                let slot = usize::from(got);
                if got != want && reported.get(slot) == Some(&false) {
                    if let Some(r) = reported.get_mut(slot) {
                        *r = true;
                    }
                    problems.push((
                        format!(
                            "{} socket(family {family}, type {socket_type:#x}, protocol {protocol})",
                            if got { "allows" } else { "denies" },
                        ),
                        got,
                    ));
                }
            }
            continue;
        }
        for args in syscall_domain(name) {
            let want = exp.syscall_allowed(name, &args);
            let got = eval.allows(name, &args);
            if got != want {
                problems.push((
                    format!("{} `{name}`", if got { "allows" } else { "denies" }),
                    got,
                ));
                break;
            }
        }
    }
    problems
}

pub fn validate(
    policy: &CheckedPolicy,
    config: &TargetConfig,
    artifacts: &Artifacts,
) -> Result<ValidationReport, Vec<Diagnostic>> {
    let span = crate::policy_span(policy);
    let mut errors = Vec::new();
    let mut checked = 0;
    let domain = socket_domain();
    let mut memo: Vec<((String, Expectation), Vec<Problem>)> = Vec::new();
    for agent in &policy.agents {
        let exp = Expectation::of(policy, agent);
        for arch in &config.seccomp.architectures {
            let file = format!("{}.{}.json", file_stem(&agent.name.local), arch.as_str());
            let Some(text) = artifacts.files.get(&file) else {
                errors.push(undecodable(span, &file, "missing"));
                continue;
            };
            let profile: LinuxSeccomp = match serde_json::from_str(text) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(undecodable(span, &file, &e.to_string()));
                    continue;
                }
            };
            let mut wrong = |what: String, wider: bool| {
                errors.push(
                    Diagnostic::error(
                        if wider { "E0120" } else { "E0121" },
                        agent.name.span,
                        format!(
                            "seccomp profile `{file}` of agent `{}` {what}",
                            agent.name.local
                        ),
                    )
                    .with_help("this is a bug in egc's lowering; please report it with the policy"),
                )
            };
            if profile.default_action() != LinuxSeccompAction::ScmpActErrno
                || profile.default_errno_ret() != Some(EPERM)
            {
                wrong("does not deny by default with EPERM".into(), true);
            }
            if profile.architectures().as_deref() != Some(&[arch.oci()][..]) {
                wrong(
                    format!("lists architectures other than {} alone", arch.as_str()),
                    true,
                );
            }
            if profile.flags().as_ref().is_some_and(|f| !f.is_empty())
                || profile.listener_path().is_some()
            {
                wrong("sets flags or a listener".into(), true);
            }
            // Profiles with the same text judged against the same expectation give the same
            // answer: evaluate each distinct pair once.
            let key = (text.clone(), exp.clone());
            let problems = match memo.iter().find(|(k, _)| *k == key) {
                Some((_, problems)) => problems.clone(),
                None => {
                    let problems = profile_problems(&Evaluator::new(profile), &exp, &domain);
                    memo.push((key, problems.clone()));
                    problems
                }
            };
            for (what, wider) in problems {
                wrong(what, wider);
            }
            checked += 1;
        }
    }
    if errors.is_empty() {
        Ok(ValidationReport {
            agents_checked: checked,
            narrowings: artifacts.notes.clone(),
        })
    } else {
        Err(errors)
    }
}

/// The OCI seccomp backend.
pub struct Seccomp;

impl crate::backend::Backend for Seccomp {
    fn target(&self) -> Target {
        Target::Seccomp
    }
    fn lower(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
    ) -> Result<Artifacts, Vec<Diagnostic>> {
        lower(policy, config)
    }
    fn decode(
        &self,
        policy: &CheckedPolicy,
        config: &TargetConfig,
        artifacts: &Artifacts,
    ) -> Result<crate::backend::Decoding, Vec<Diagnostic>> {
        Ok(crate::backend::Decoding::Judged(validate(
            policy, config, artifacts,
        )))
    }
    fn identifies(&self, agent: &egress_check::Agent) -> bool {
        // One profile per agent and architecture, named after the agent.
        let _ = agent;
        true
    }
}
