//! CiliumNetworkPolicy (`cilium.io/v2`).
//!
//! Per namespace holding an agent: a default-deny egress policy (`endpointSelector: {}`,
//! `egress: [{}]`). Per agent: one policy selecting its pods, with per destination up to
//! three rules (`toFQDNs`, `toCIDRSet`, `toEndpoints` are never mixed in one rule, as the
//! CRD requires for `toFQDNs`), each with the destination's `toPorts`. Host patterns are
//! translated exactly: an exact name is `matchName`; `*` as a whole label is one label in
//! Cilium's `matchPattern` too; `**` (one or more labels) only from Cilium 1.19, which
//! reads a leading `**.` as multi-label (older versions read it as `*`: refused, E0102).
//! Agents with host-name destinations need the DNS proxy to see their lookups: the rule of
//! their port-53 destination carries `rules.dns: [{matchPattern: "*"}]`, which inspects
//! without restricting (E0107 when there is no such destination).

use std::collections::{BTreeMap, BTreeSet};

use egress_check::{
    AgentId, CheckedPolicy, EndpointKind, HostLabel, HostPattern, Protocol, WorkloadSelector,
};
use serde::{Deserialize, Serialize};

use crate::expected::{self, Decoded};
use crate::k8s::{compatible, no_workload, to_json, undecodable};
use crate::{file_stem, Artifacts, CiliumConfig, Diagnostic, Target, TargetConfig};
use egress_sets::{ConnectionSet, IpSet, PortSet, TargetSet};

/// The label Cilium gives every endpoint with its namespace.
pub const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";
/// The most ports one `toPorts` entry may hold (the CRD's `maxItems`).
pub const MAX_PORTS_PER_RULE: usize = 40;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cnp {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    pub endpoint_selector: Selector,
    pub egress: Vec<EgressRule>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    #[serde(rename = "toFQDNs", default, skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    #[serde(rename = "toCIDRSet", default, skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    #[serde(
        rename = "toEndpoints",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub to_endpoints: Option<Vec<Selector>>,
    #[serde(rename = "toPorts", default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRule {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    pub ports: Vec<PortProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    pub protocol: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct L7Rules {
    pub dns: Vec<FqdnSelector>,
}

/// The Cilium spelling of a host pattern, or why it has none.
pub fn fqdn_selector(pattern: &HostPattern, config: &CiliumConfig) -> Result<FqdnSelector, String> {
    if pattern.is_exact() {
        return Ok(FqdnSelector {
            match_name: Some(pattern.to_string()),
            match_pattern: None,
        });
    }
    for (i, label) in pattern.labels.iter().enumerate() {
        if matches!(label, HostLabel::OneOrMore) {
            if i != 0 {
                return Err("`**` is only allowed as the leftmost label".into());
            }
            if !config.supports_multi_label_wildcard() {
                return Err(format!(
                    "Cilium {}.{} reads `**` as `*` (one label); multi-label `**.` needs Cilium 1.19 or later",
                    config.version.0, config.version.1
                ));
            }
        }
    }
    Ok(FqdnSelector {
        match_name: None,
        match_pattern: Some(pattern.to_string()),
    })
}

/// Decodes a Cilium FQDN selector under the configured version's semantics.
pub fn decode_fqdn(sel: &FqdnSelector, config: &CiliumConfig) -> Result<HostPattern, String> {
    let (text, is_pattern) = match (&sel.match_name, &sel.match_pattern) {
        (Some(n), None) => (n, false),
        (None, Some(p)) => (p, true),
        _ => return Err("an FQDN selector needs exactly one of matchName, matchPattern".into()),
    };
    let text = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let parts: Vec<&str> = text.split('.').collect();
    let mut labels = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(format!("empty label in `{text}`"));
        }
        if !is_pattern || !part.contains('*') {
            if part.contains('*') {
                return Err(format!("`*` in matchName `{text}`"));
            }
            labels.push(HostLabel::Exact((*part).to_string()));
            continue;
        }
        if part.chars().all(|c| c == '*') {
            if parts.len() == 1 {
                return Err("a bare `*` pattern matches every name".into());
            }
            if part.len() >= 2 && i == 0 && config.supports_multi_label_wildcard() {
                labels.push(HostLabel::OneOrMore);
            } else {
                labels.push(HostLabel::One);
            }
            continue;
        }
        return Err(format!("partial-label wildcard `{part}` is not decoded"));
    }
    Ok(HostPattern { labels })
}

fn ports_of(protocols: &[Protocol], ports: &[egress_check::PortRange]) -> Vec<PortProtocol> {
    let mut out = Vec::new();
    for protocol in protocols {
        for range in ports {
            out.push(PortProtocol {
                port: range.start.to_string(),
                end_port: (range.end > range.start).then_some(range.end),
                protocol: protocol_name(*protocol).to_string(),
            });
        }
    }
    out
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

fn port_rules(ports: Vec<PortProtocol>, dns: bool) -> Vec<PortRule> {
    ports
        .chunks(MAX_PORTS_PER_RULE)
        .map(|chunk| PortRule {
            ports: chunk.to_vec(),
            rules: dns.then(|| L7Rules {
                dns: vec![FqdnSelector {
                    match_name: None,
                    match_pattern: Some("*".to_string()),
                }],
            }),
        })
        .collect()
}

pub fn lower(policy: &CheckedPolicy, config: &TargetConfig) -> Result<Artifacts, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut files = BTreeMap::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    let managed = BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        config.k8s.managed_by.clone(),
    )]);
    for agent in &policy.agents {
        let Some(workload) = &agent.identity.workload else {
            notes.push(no_workload(agent, Target::Cilium));
            continue;
        };
        namespaces.insert(workload.namespace.clone());
        let dests = expected::unconditional_destinations(policy, agent);
        let has_hosts = dests.iter().any(|d| {
            d.endpoints
                .iter()
                .any(|e| matches!(e.kind, EndpointKind::Host(_)))
        });
        let is_dns = |d: &egress_check::Destination| {
            d.ports.len() == 1 && d.ports.iter().all(|p| p.start == 53 && p.end == 53)
        };
        if has_hosts && !dests.iter().any(|d| is_dns(d)) {
            errors.push(
                Diagnostic::error(
                    "E0107",
                    agent.name.span,
                    format!(
                        "agent `{}` reaches host names but has no destination on port 53 alone for Cilium's DNS proxy to inspect",
                        agent.name.local
                    ),
                )
                .with_label("toFQDNs needs a DNS rule")
                .with_help("grant a DNS destination (e.g. `dns.kube_dns` from `std.dns`) whose only port is 53"),
            );
        }
        let mut rules = Vec::new();
        for dest in &dests {
            let ports = ports_of(&dest.protocols, &dest.ports);
            let dns = has_hosts && is_dns(dest);
            let mut fqdns = Vec::new();
            let mut cidrs = Vec::new();
            let mut endpoints = Vec::new();
            for endpoint in &dest.endpoints {
                match &endpoint.kind {
                    EndpointKind::Host(pattern) => match fqdn_selector(pattern, &config.cilium) {
                        Ok(sel) => fqdns.push(sel),
                        Err(why) => errors.push(
                            Diagnostic::error(
                                "E0102",
                                endpoint.span,
                                format!(
                                    "Cilium cannot express host pattern `{pattern}` exactly (destination `{}`): {why}",
                                    dest.name.local
                                ),
                            )
                            .with_label("no exact Cilium matchPattern")
                            .with_help(
                                "pass `--cilium-version 1.19` if the cluster runs Cilium 1.19 or later; otherwise list the label depths you need (`*.x.example`, `*.*.x.example`)",
                            ),
                        ),
                    },
                    // Unspecified addresses are never allowed (`except`, or no rule).
                    EndpointKind::Cidr(cidr) => {
                        if let Some(cidr) = crate::expected::enforced_cidr(cidr) {
                            cidrs.push(CidrRule {
                                cidr: cidr.network.to_string(),
                                except: (!cidr.except.is_empty()).then(|| {
                                    cidr.except.iter().map(|e| e.to_string()).collect()
                                }),
                            })
                        }
                    }
                    EndpointKind::Workload(sel) => endpoints.push(endpoint_selector(sel)),
                }
            }
            if !fqdns.is_empty() {
                rules.push(EgressRule {
                    to_fqdns: Some(fqdns),
                    to_ports: Some(port_rules(ports.clone(), false)),
                    ..Default::default()
                });
            }
            if !cidrs.is_empty() {
                rules.push(EgressRule {
                    to_cidr_set: Some(cidrs),
                    to_ports: Some(port_rules(ports.clone(), dns)),
                    ..Default::default()
                });
            }
            if !endpoints.is_empty() {
                rules.push(EgressRule {
                    to_endpoints: Some(endpoints),
                    to_ports: Some(port_rules(ports, dns)),
                    ..Default::default()
                });
            }
        }
        notes.extend(expected::static_narrowings(policy, agent, Target::Cilium));
        if rules.is_empty() {
            continue;
        }
        let object = Cnp {
            api_version: "cilium.io/v2".to_string(),
            kind: "CiliumNetworkPolicy".to_string(),
            metadata: Metadata {
                name: format!("egc-agent-{}", file_stem(&agent.name.local)),
                namespace: workload.namespace.clone(),
                labels: managed.clone(),
                annotations: BTreeMap::from([(
                    crate::k8s::AGENT_ANNOTATION.to_string(),
                    agent.name.local.clone(),
                )]),
            },
            spec: Spec {
                endpoint_selector: Selector {
                    match_labels: workload.labels.to_map(),
                },
                egress: rules,
            },
        };
        files.insert(
            format!("agent-{}.json", file_stem(&agent.name.local)),
            to_json(&object),
        );
    }
    for namespace in &namespaces {
        let object = Cnp {
            api_version: "cilium.io/v2".to_string(),
            kind: "CiliumNetworkPolicy".to_string(),
            metadata: Metadata {
                name: "egc-default-deny-egress".to_string(),
                namespace: namespace.clone(),
                labels: managed.clone(),
                annotations: BTreeMap::new(),
            },
            spec: Spec {
                endpoint_selector: Selector::default(),
                egress: vec![EgressRule::default()],
            },
        };
        files.insert(
            format!(
                "namespace-{}-default-deny-egress.json",
                file_stem(namespace)
            ),
            to_json(&object),
        );
    }
    if errors.is_empty() {
        Ok(Artifacts { files, notes })
    } else {
        Err(errors)
    }
}

fn endpoint_selector(sel: &WorkloadSelector) -> Selector {
    let mut labels = sel.labels.to_map();
    labels.insert(NAMESPACE_LABEL.to_string(), sel.namespace.clone());
    Selector {
        match_labels: labels,
    }
}

// ---------------------------------------------------------------------------------------
// Decoding: an evaluator of CiliumNetworkPolicy egress semantics (allow rules).

struct DecodedCnp {
    name: String,
    namespace: String,
    agent: Option<String>,
    selector: BTreeMap<String, String>,
    allowed: ConnectionSet,
}

pub fn decode(
    policy: &CheckedPolicy,
    config: &TargetConfig,
    artifacts: &Artifacts,
) -> Result<BTreeMap<AgentId, Decoded>, Vec<Diagnostic>> {
    let span = crate::policy_span(policy);
    let mut errors = Vec::new();
    let mut decoded = Vec::new();
    for (file, text) in &artifacts.files {
        let object: Cnp = match serde_json::from_str(text) {
            Ok(o) => o,
            Err(e) => {
                errors.push(undecodable(span, file, &e.to_string()));
                continue;
            }
        };
        match decode_cnp(&object, &config.cilium) {
            Ok(d) => decoded.push(d),
            Err(why) => errors.push(undecodable(span, file, &why)),
        }
    }
    let mut out = BTreeMap::new();
    for agent in &policy.agents {
        let Some(workload) = &agent.identity.workload else {
            continue;
        };
        let selecting: Vec<&DecodedCnp> = decoded
            .iter()
            .filter(|p| {
                p.namespace == workload.namespace && compatible(&p.selector, &workload.labels)
            })
            .collect();
        if selecting.is_empty() {
            errors.push(
                Diagnostic::error(
                    "E0120",
                    agent.name.span,
                    format!(
                        "no CiliumNetworkPolicy selects the pods of agent `{}`: their egress would be unrestricted",
                        agent.name.local
                    ),
                )
                .with_label("egress not isolated"),
            );
            continue;
        }
        let mut d = Decoded::default();
        for p in selecting {
            d.set.extend(&p.allowed);
            if !p.allowed.is_empty() {
                d.contributors
                    .push(p.agent.clone().unwrap_or_else(|| p.name.clone()));
            }
        }
        out.insert(agent.id, d);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn decode_cnp(object: &Cnp, config: &CiliumConfig) -> Result<DecodedCnp, String> {
    if object.api_version != "cilium.io/v2" || object.kind != "CiliumNetworkPolicy" {
        return Err("not a cilium.io/v2 CiliumNetworkPolicy".into());
    }
    let mut allowed = ConnectionSet::default();
    for rule in &object.spec.egress {
        let l3_kinds = usize::from(rule.to_fqdns.is_some())
            + usize::from(rule.to_cidr_set.is_some())
            + usize::from(rule.to_endpoints.is_some());
        if rule.to_fqdns.is_some() && l3_kinds > 1 {
            return Err("toFQDNs mixed with other to* selectors in one rule".into());
        }
        let mut targets = Vec::new();
        for sel in rule.to_fqdns.iter().flatten() {
            targets.push(TargetSet::Host(decode_fqdn(sel, config)?));
        }
        for c in rule.to_cidr_set.iter().flatten() {
            let network = c
                .cidr
                .parse()
                .map_err(|_| format!("invalid cidr {}", c.cidr))?;
            let mut except = Vec::new();
            for e in c.except.iter().flatten() {
                except.push(e.parse().map_err(|_| format!("invalid except {e}"))?);
            }
            let cidr = egress_check::CidrSet { network, except };
            targets.push(TargetSet::Ip(IpSet::from_cidr(&cidr)));
        }
        for sel in rule.to_endpoints.iter().flatten() {
            let mut labels = sel.match_labels.clone();
            let namespace = labels
                .remove(NAMESPACE_LABEL)
                .unwrap_or_else(|| object.metadata.namespace.clone());
            targets.push(TargetSet::Workload(WorkloadSelector {
                namespace,
                labels: labels.into(),
            }));
        }
        let ports = match &rule.to_ports {
            None => {
                if l3_kinds == 0 {
                    // `{}`: the empty rule, which allows nothing and only isolates.
                    continue;
                }
                let all = PortSet::from_intervals([(1, 65535)]);
                vec![(Protocol::Tcp, all.clone()), (Protocol::Udp, all)]
            }
            Some(port_rules) => {
                if l3_kinds == 0 {
                    return Err("toPorts without an L3 selector allows every destination".into());
                }
                decode_ports(port_rules)?
            }
        };
        for target in targets {
            for (protocol, set) in &ports {
                allowed.add(*protocol, target.clone(), set.clone());
            }
        }
    }
    Ok(DecodedCnp {
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        agent: object
            .metadata
            .annotations
            .get(crate::k8s::AGENT_ANNOTATION)
            .cloned(),
        selector: object.spec.endpoint_selector.match_labels.clone(),
        allowed,
    })
}

fn decode_ports(rules: &[PortRule]) -> Result<Vec<(Protocol, PortSet)>, String> {
    let mut by_protocol: BTreeMap<Protocol, PortSet> = BTreeMap::new();
    for rule in rules {
        if let Some(l7) = &rule.rules {
            // Only the inspecting, non-restricting DNS rule is emitted.
            let inspect_all = l7.dns.len() == 1
                && l7
                    .dns
                    .iter()
                    .all(|d| d.match_name.is_none() && d.match_pattern.as_deref() == Some("*"));
            if !inspect_all {
                return Err("L7 rules other than the DNS inspection rule are not decoded".into());
            }
        }
        for p in &rule.ports {
            let protocols: Vec<Protocol> = match p.protocol.as_str() {
                "TCP" => vec![Protocol::Tcp],
                "UDP" => vec![Protocol::Udp],
                "ANY" | "" => vec![Protocol::Tcp, Protocol::Udp],
                other => return Err(format!("protocol {other} is not decoded")),
            };
            let start: u16 = p
                .port
                .parse()
                .map_err(|_| format!("named or invalid port `{}`", p.port))?;
            let (start, end) = if start == 0 {
                (1, 65535)
            } else {
                (start, p.end_port.unwrap_or(start).max(start))
            };
            for protocol in protocols {
                let entry = by_protocol.entry(protocol).or_default();
                *entry = entry.union(&PortSet::from_intervals([(start, end)]));
            }
        }
    }
    Ok(by_protocol.into_iter().collect())
}

/// The CiliumNetworkPolicy backend.
pub struct Cilium;

impl crate::backend::Backend for Cilium {
    fn target(&self) -> Target {
        Target::Cilium
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
        decode(policy, config, artifacts).map(crate::backend::Decoding::Connections)
    }
    fn identifies(&self, agent: &egress_check::Agent) -> bool {
        agent.identity.workload.is_some()
    }
}
