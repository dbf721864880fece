//! Policy text generators: small random policies for the differential test (from a
//! [`PolicySpec`] that a property-test strategy builds) and large policies for the
//! benchmark ([`large_policy`]). Both produce `.egress` text, so the whole pipeline
//! (parser, checker, verifier) is exercised.

use std::fmt::Write;

/// One endpoint of a generated destination.
#[derive(Clone, Debug)]
pub enum EndpointSpec {
    /// A host pattern, written as in a policy.
    Host(String),
    /// A CIDR with exclusions, written as in a policy.
    Cidr {
        network: String,
        except: Vec<String>,
    },
    Workload {
        namespace: String,
        labels: Vec<(String, String)>,
    },
}

#[derive(Clone, Debug)]
pub struct DestSpec {
    pub endpoints: Vec<EndpointSpec>,
    pub ports: Vec<(u16, u16)>,
    pub tcp: bool,
    pub udp: bool,
}

#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// Indices into `caps`.
    pub uses: Vec<usize>,
    pub handles_pii: bool,
    /// (callee index, passes pii explicitly or passes nothing but `other`, or everything).
    pub invokes: Vec<(usize, Passing)>,
}

#[derive(Clone, Copy, Debug)]
pub enum Passing {
    Everything,
    Pii,
    Other,
}

#[derive(Clone, Debug)]
pub struct ZoneSpec {
    /// Indices into `agents`; empty means `agents *`.
    pub agents: Vec<usize>,
    pub approve: Vec<usize>,
    pub clear_pii: Vec<usize>,
    /// `approve grant CAP_NET_RAW`.
    pub approve_net_raw: bool,
    /// `approve unix` of these indices into [`LOCAL_SOCKETS`].
    pub approve_unix: Vec<usize>,
}

/// The local sockets generated capabilities and zones name.
pub const LOCAL_SOCKETS: &[&str] = &["/run/a.sock", "/run/b.sock"];

/// What a generated capability has besides its connections.
#[derive(Clone, Debug, Default)]
pub struct CapExtras {
    /// `grant CAP_NET_RAW` (literally) or, with `via_set`, through a capability set.
    pub net_raw: bool,
    pub via_set: bool,
    /// `unix` of these indices into [`LOCAL_SOCKETS`].
    pub unix: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct ExceptionSpec {
    pub agents: Vec<usize>,
    pub to: usize,
    pub audit: usize,
}

#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub dests: Vec<DestSpec>,
    /// Per capability: destination indices it connects to.
    pub caps: Vec<Vec<usize>>,
    /// Per capability (missing entries: none): Linux capabilities and local sockets.
    pub cap_extras: Vec<CapExtras>,
    pub agents: Vec<AgentSpec>,
    pub zones: Vec<ZoneSpec>,
    pub exceptions: Vec<ExceptionSpec>,
    /// (agent index or None for `*`, destination index): `cannot reach` claims.
    pub cannot_reach: Vec<(Option<usize>, usize)>,
    /// (agent index or None for `*`, destination index): `can reach` claims.
    pub can_reach: Vec<(Option<usize>, usize)>,
    /// Steps `step A invokes B [passing ...]` of one workflow `w0`, as (agent, callee,
    /// passing). A step whose agent does not declare `invokes B` is not written (E0038).
    pub step_invokes: Vec<(usize, usize, Passing)>,
    /// Destination indices `pii` never reaches.
    pub never_reaches: Vec<usize>,
}

fn write_dest(out: &mut String, name: &str, d: &DestSpec) {
    let _ = writeln!(out, "destination {name} {{");
    for e in &d.endpoints {
        match e {
            EndpointSpec::Host(h) => {
                let _ = writeln!(out, "    host \"{h}\"");
            }
            EndpointSpec::Cidr { network, except } => {
                if except.is_empty() {
                    let _ = writeln!(out, "    cidr {network}");
                } else {
                    let _ = writeln!(out, "    cidr {network} except {}", except.join(", "));
                }
            }
            EndpointSpec::Workload { namespace, labels } => {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k} = \"{v}\""))
                    .collect();
                if labels.is_empty() {
                    let _ = writeln!(out, "    workload namespace \"{namespace}\"");
                } else {
                    let _ = writeln!(
                        out,
                        "    workload namespace \"{namespace}\" labels {{ {} }}",
                        labels.join(", ")
                    );
                }
            }
        }
    }
    let ports: Vec<String> = d
        .ports
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let _ = writeln!(out, "    port {}", ports.join(", "));
    let protocols: Vec<&str> = [(d.tcp, "tcp"), (d.udp, "udp")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, p)| *p)
        .collect();
    if !protocols.is_empty() {
        let _ = writeln!(out, "    protocol {}", protocols.join(", "));
    }
    let _ = writeln!(out, "}}");
}

impl PolicySpec {
    /// The policy as one `.egress` file.
    pub fn render(&self) -> String {
        let mut out = String::from("data pii, other\n\n");
        for (i, d) in self.dests.iter().enumerate() {
            write_dest(&mut out, &format!("d{i}"), d);
        }
        out.push_str("syscalls net { socket, connect, sendto }\n");
        out.push_str("capset raw_set { CAP_NET_RAW }\n");
        let quoted = |list: &[usize]| -> Vec<String> {
            list.iter()
                .filter_map(|i| LOCAL_SOCKETS.get(*i))
                .map(|p| format!("\"{p}\""))
                .collect()
        };
        for (i, c) in self.caps.iter().enumerate() {
            let _ = writeln!(out, "capability c{i} {{");
            if !c.is_empty() {
                let names: Vec<String> = c.iter().map(|d| format!("d{d}")).collect();
                let _ = writeln!(out, "    connect {}", names.join(", "));
            }
            if let Some(extras) = self.cap_extras.get(i) {
                if extras.net_raw {
                    let what = if extras.via_set {
                        "raw_set"
                    } else {
                        "CAP_NET_RAW"
                    };
                    let _ = writeln!(out, "    grant {what}");
                }
                let sockets = quoted(&extras.unix);
                if !sockets.is_empty() {
                    let _ = writeln!(out, "    unix {}", sockets.join(", "));
                }
            }
            let _ = writeln!(out, "    syscalls net\n}}");
        }
        for (i, a) in self.agents.iter().enumerate() {
            let _ = writeln!(out, "agent a{i} {{");
            let _ = writeln!(
                out,
                "    workload namespace \"agents\" labels {{ app = \"a{i}\" }}"
            );
            if !a.uses.is_empty() {
                let names: Vec<String> = a.uses.iter().map(|c| format!("c{c}")).collect();
                let _ = writeln!(out, "    uses {}", names.join(", "));
            }
            if a.handles_pii {
                let _ = writeln!(out, "    handles pii");
            }
            for (callee, passing) in &a.invokes {
                match passing {
                    Passing::Everything => {
                        let _ = writeln!(out, "    invokes a{callee}");
                    }
                    Passing::Pii => {
                        let _ = writeln!(out, "    invokes a{callee} passing pii");
                    }
                    Passing::Other => {
                        let _ = writeln!(out, "    invokes a{callee} passing other");
                    }
                }
            }
            let _ = writeln!(out, "}}");
        }
        if !self.exceptions.is_empty() {
            out.push_str("authority approver {\n    key \"ed25519:HB1xxhfBQOeXKjqOEIIYtKAPVQPROCNyS7Su0ATE4MA=\"\n    max_ttl 1h\n}\n");
        }
        for (i, e) in self.exceptions.iter().enumerate() {
            let agents: Vec<String> = e.agents.iter().map(|a| format!("a{a}")).collect();
            let _ = writeln!(
                out,
                "exception e{i} {{\n    agents {}\n    to d{}\n    approver approver\n    max_ttl 15m\n    audit d{}\n    legal_basis \"test\"\n}}",
                agents.join(", "),
                e.to,
                e.audit
            );
        }
        for (i, z) in self.zones.iter().enumerate() {
            let _ = writeln!(out, "zone z{i} {{");
            if z.agents.is_empty() {
                let _ = writeln!(out, "    agents *");
            } else {
                let names: Vec<String> = z.agents.iter().map(|a| format!("a{a}")).collect();
                let _ = writeln!(out, "    agents {}", names.join(", "));
            }
            if !z.approve.is_empty() {
                let names: Vec<String> = z.approve.iter().map(|d| format!("d{d}")).collect();
                let _ = writeln!(out, "    approve {}", names.join(", "));
            }
            if !z.clear_pii.is_empty() {
                let names: Vec<String> = z.clear_pii.iter().map(|d| format!("d{d}")).collect();
                let _ = writeln!(out, "    clear pii to {}", names.join(", "));
            }
            if z.approve_net_raw {
                let _ = writeln!(out, "    approve grant CAP_NET_RAW");
            }
            let sockets = quoted(&z.approve_unix);
            if !sockets.is_empty() {
                let _ = writeln!(out, "    approve unix {}", sockets.join(", "));
            }
            let _ = writeln!(out, "}}");
        }
        let steps: Vec<String> = self
            .step_invokes
            .iter()
            .filter(|(agent, callee, _)| {
                self.agents
                    .get(*agent)
                    .is_some_and(|a| a.invokes.iter().any(|(c, _)| c == callee))
            })
            .map(|(agent, callee, passing)| match passing {
                Passing::Everything => format!("    step a{agent} invokes a{callee}"),
                Passing::Pii => format!("    step a{agent} invokes a{callee} passing pii"),
                Passing::Other => format!("    step a{agent} invokes a{callee} passing other"),
            })
            .collect();
        if !steps.is_empty() {
            let _ = writeln!(out, "workflow w0 {{\n{}\n}}", steps.join("\n"));
        }
        if !self.cannot_reach.is_empty()
            || !self.can_reach.is_empty()
            || !self.never_reaches.is_empty()
        {
            out.push_str("assert claims {\n");
            for (agent, dest, can) in self
                .cannot_reach
                .iter()
                .map(|(a, d)| (a, d, "cannot"))
                .chain(self.can_reach.iter().map(|(a, d)| (a, d, "can")))
            {
                match agent {
                    Some(a) => {
                        let _ = writeln!(out, "    agent a{a} {can} reach d{dest}");
                    }
                    None => {
                        let _ = writeln!(out, "    agent * {can} reach d{dest}");
                    }
                }
            }
            for dest in &self.never_reaches {
                let _ = writeln!(out, "    data pii never reaches d{dest}");
            }
            out.push_str("}\n");
        }
        out
    }
}

/// A deterministic pseudo-random generator (xorshift), so benchmarks are reproducible
/// without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// A large, realistic policy with `agents` agents, as (file name, text) pairs: a
/// `main.egress` with destinations (wildcard hosts, CIDRs with exclusions, workloads),
/// capabilities, agents in delegation chains of length up to 5, and exceptions; and an
/// `approvals.egress` with one zone per team of 50 agents that approves and clears what
/// the team uses. The policy verifies: every check is a real proof, not an early exit.
pub fn large_policy(agents: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng::new(seed);
    let teams = agents.div_ceil(50).max(1);
    let mut main = String::from("import std.dns\nimport std.sys\n\ndata pii, financial\n\n");
    let mut approvals = String::from("import \"main.egress\" as p\nimport std.dns\n\n");
    main.push_str("authority dpo {\n    key \"ed25519:HB1xxhfBQOeXKjqOEIIYtKAPVQPROCNyS7Su0ATE4MA=\"\n    max_ttl 1h\n}\n");
    for t in 0..teams {
        // Per team: a wildcard service set, a CIDR with an exclusion, a workload, an
        // audit sink and an erasure pattern for exceptions.
        let _ = writeln!(
            main,
            "destination t{t}_svc {{\n    host \"*.t{t}.svc.internal\", \"api.t{t}.corp.internal\"\n    port 443, 8443\n}}"
        );
        let (b, c) = (t / 256 % 256, t % 256);
        let _ = writeln!(
            main,
            "destination t{t}_net {{\n    cidr 10.{b}.{c}.0/24 except 10.{b}.{c}.128/28\n    cidr fd00:{t:x}::/64\n    port 8000-8100\n}}"
        );
        let _ = writeln!(
            main,
            "destination t{t}_db {{\n    workload namespace \"team{t}\" labels {{ app = \"db\" }}\n    port 5432\n}}"
        );
        let _ = writeln!(
            main,
            "destination t{t}_audit {{\n    host \"audit.t{t}.corp.internal\"\n    port 6514\n}}"
        );
        let _ = writeln!(
            main,
            "destination t{t}_partners {{\n    host \"**.t{t}.partner.example\"\n    port 443\n}}"
        );
        let _ = writeln!(
            main,
            "capability t{t}_work {{\n    connect t{t}_svc, t{t}_db, t{t}_audit, dns.kube_dns\n    syscalls sys.process_base, sys.network_client\n}}"
        );
        let _ = writeln!(
            main,
            "capability t{t}_batch {{\n    connect t{t}_net, t{t}_db, dns.kube_dns\n    syscalls sys.process_base, sys.network_client\n}}"
        );
        let _ = writeln!(
            main,
            "capability t{t}_private {{\n    connect t{t}_db, t{t}_audit, dns.kube_dns\n    syscalls sys.process_base, sys.network_client\n}}"
        );
        // The team's zone: approvals and clearances. Clear financial everywhere the team
        // goes; pii only to the database, audit, DNS, and partners.
        let lo = t * 50;
        let hi = ((t + 1) * 50).min(agents);
        let members: Vec<String> = (lo..hi).map(|i| format!("p.agent{i}")).collect();
        let _ = writeln!(
            approvals,
            "zone team{t} {{\n    owner \"security-team\"\n    agents {}\n    approve p.t{t}_svc, p.t{t}_net, p.t{t}_db, p.t{t}_audit, p.t{t}_partners, dns.kube_dns\n    clear p.financial to p.t{t}_svc, p.t{t}_net, p.t{t}_db, p.t{t}_audit, p.t{t}_partners, dns.kube_dns\n    clear p.pii to p.t{t}_db, p.t{t}_audit, p.t{t}_partners, dns.kube_dns\n}}",
            members.join(", ")
        );
    }
    for i in 0..agents {
        let t = i / 50;
        let _ = writeln!(main, "agent agent{i} {{");
        let _ = writeln!(
            main,
            "    workload namespace \"team{t}\" labels {{ app = \"agent{i}\" }}"
        );
        // The first agent of each team handles `pii` and holds the team's exception.
        let cap = if i % 50 == 0 {
            "private"
        } else if rng.below(2) == 0 {
            "work"
        } else {
            "batch"
        };
        let _ = writeln!(main, "    uses t{t}_{cap}");
        let _ = writeln!(main, "    handles financial");
        if i % 50 == 0 {
            let _ = writeln!(main, "    handles pii");
        }
        // Delegation chains inside the team: each agent may invoke the next one
        // (chains of up to five), passing only `financial`.
        if i % 5 != 4 && i + 1 < ((t + 1) * 50).min(agents) {
            let _ = writeln!(main, "    invokes agent{} passing financial", i + 1);
        }
        let _ = writeln!(main, "}}");
    }
    for t in 0..teams {
        let agent = t * 50;
        if agent < agents {
            let _ = writeln!(
                main,
                "exception t{t}_notify {{\n    agents agent{agent}\n    to t{t}_partners\n    approver dpo\n    max_ttl 15m\n    max_uses 1\n    audit t{t}_audit\n    legal_basis \"contract\"\n}}"
            );
        }
    }
    vec![
        ("main.egress".to_string(), main),
        ("approvals.egress".to_string(), approvals),
    ]
}
