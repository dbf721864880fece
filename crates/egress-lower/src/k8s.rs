//! Kubernetes `networking.k8s.io/v1` NetworkPolicy.
//!
//! Emits, per namespace holding an agent, a default-deny egress policy (empty pod
//! selector, `policyTypes: [Egress]`, no rules), and per agent one allow policy selecting
//! the agent's pods by its workload labels, with one egress rule per destination: the
//! destination's CIDRs as `ipBlock` peers (with `except`) and its workloads as peers with a
//! namespace selector and a pod selector in one peer, crossed with its ports (`endPort`
//! for ranges) and protocols. Host-name destinations cannot be expressed (E0100).

use std::collections::{BTreeMap, BTreeSet};

use egress_check::{AgentId, CheckedPolicy, EndpointKind, Protocol, WorkloadSelector};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::expected::{self, Decoded};
use crate::{file_stem, Artifacts, Diagnostic, Target, TargetConfig};
use egress_sets::{ConnectionSet, IpSet, PortSet, TargetSet};

/// The label Kubernetes puts on every namespace with the namespace's name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The annotation naming the agent an allow policy belongs to.
pub const AGENT_ANNOTATION: &str = "egc/agent";

pub fn lower(policy: &CheckedPolicy, config: &TargetConfig) -> Result<Artifacts, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut files = BTreeMap::new();
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    for agent in &policy.agents {
        let Some(workload) = &agent.identity.workload else {
            notes.push(no_workload(agent, Target::K8s));
            continue;
        };
        namespaces.insert(workload.namespace.clone());
        let mut rules = Vec::new();
        for dest in expected::unconditional_destinations(policy, agent) {
            let mut peers = Vec::new();
            for endpoint in &dest.endpoints {
                match &endpoint.kind {
                    EndpointKind::Host(pattern) => errors.push(
                        Diagnostic::error(
                            "E0100",
                            endpoint.span,
                            format!(
                                "Kubernetes NetworkPolicy cannot express host name `{pattern}` (destination `{}`, agent `{}`)",
                                dest.name.local, agent.name.local
                            ),
                        )
                        .with_label("host names cannot be matched by NetworkPolicy")
                        .with_help(
                            "NetworkPolicy matches IP blocks and pods only. Targets that can express host names: `cilium` (toFQDNs). Build that target, or replace the host with a `cidr` the provider publishes",
                        ),
                    ),
                    // Unspecified addresses are never allowed (`except`, or no peer).
                    EndpointKind::Cidr(cidr) => {
                        if let Some(cidr) = expected::enforced_cidr(cidr) {
                            peers.push(NetworkPolicyPeer {
                                ip_block: Some(IPBlock {
                                    cidr: cidr.network.to_string(),
                                    except: if cidr.except.is_empty() {
                                        None
                                    } else {
                                        Some(cidr.except.iter().map(|e| e.to_string()).collect())
                                    },
                                }),
                                ..Default::default()
                            })
                        }
                    }
                    EndpointKind::Workload(sel) => peers.push(workload_peer(sel)),
                }
            }
            if peers.is_empty() {
                continue;
            }
            let mut ports = Vec::new();
            for protocol in &dest.protocols {
                for range in &dest.ports {
                    ports.push(NetworkPolicyPort {
                        protocol: Some(protocol_name(*protocol).to_string()),
                        port: Some(IntOrString::Int(i32::from(range.start))),
                        end_port: (range.end > range.start).then_some(i32::from(range.end)),
                    });
                }
            }
            rules.push(NetworkPolicyEgressRule {
                to: Some(peers),
                ports: Some(ports),
            });
        }
        notes.extend(expected::static_narrowings(policy, agent, Target::K8s));
        if rules.is_empty() {
            // The namespace default-deny already allows nothing.
            continue;
        }
        let object = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(format!("egc-agent-{}", file_stem(&agent.name.local))),
                namespace: Some(workload.namespace.clone()),
                labels: Some(managed_labels(config)),
                annotations: Some(BTreeMap::from([(
                    AGENT_ANNOTATION.to_string(),
                    agent.name.local.clone(),
                )])),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(workload.labels.to_map()),
                    match_expressions: None,
                }),
                policy_types: Some(vec!["Egress".to_string()]),
                egress: Some(rules),
                ingress: None,
            }),
        };
        files.insert(
            format!("agent-{}.json", file_stem(&agent.name.local)),
            to_json(&object),
        );
    }
    for namespace in &namespaces {
        let object = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some("egc-default-deny-egress".to_string()),
                namespace: Some(namespace.clone()),
                labels: Some(managed_labels(config)),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_string()]),
                egress: None,
                ingress: None,
            }),
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

pub(crate) fn no_workload(agent: &egress_check::Agent, target: Target) -> Diagnostic {
    Diagnostic::warning(
        "E0103",
        agent.name.span,
        format!(
            "agent `{}` is not in the {target} artifacts: it has no `workload` selector, so it does not run as a pod",
            agent.name.local
        ),
    )
    .with_label("no workload identity")
    .with_help(
        "if the agent runs in Kubernetes, add `workload namespace \"NS\" labels { app = \"...\" }`; otherwise enforce it with `seccomp`, `nftables` (with a `cgroup` or `uid`) or `egc enforce`",
    )
}

fn managed_labels(config: &TargetConfig) -> BTreeMap<String, String> {
    BTreeMap::from([(
        "app.kubernetes.io/managed-by".to_string(),
        config.k8s.managed_by.clone(),
    )])
}

fn workload_peer(sel: &WorkloadSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: None,
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                sel.namespace.clone(),
            )])),
            match_expressions: None,
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(sel.labels.to_map()),
            match_expressions: None,
        }),
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------------------
// Decoding: an evaluator of NetworkPolicy egress semantics.

struct Decodedpolicy {
    name: String,
    namespace: String,
    agent: Option<String>,
    selector: BTreeMap<String, String>,
    egress_isolates: bool,
    allowed: ConnectionSet,
}

/// Reads every emitted NetworkPolicy back and computes, per agent, the union of what every
/// policy selecting the agent's pods allows (NetworkPolicies are additive).
pub fn decode(
    policy: &CheckedPolicy,
    artifacts: &Artifacts,
) -> Result<BTreeMap<AgentId, Decoded>, Vec<Diagnostic>> {
    let span = crate::policy_span(policy);
    let mut errors = Vec::new();
    let mut decoded_policies = Vec::new();
    for (file, text) in &artifacts.files {
        let object: NetworkPolicy = match serde_json::from_str(text) {
            Ok(o) => o,
            Err(e) => {
                errors.push(undecodable(span, file, &e.to_string()));
                continue;
            }
        };
        match decode_policy(&object) {
            Ok(p) => decoded_policies.push(p),
            Err(why) => errors.push(undecodable(span, file, &why)),
        }
    }
    let mut out = BTreeMap::new();
    for agent in &policy.agents {
        let Some(workload) = &agent.identity.workload else {
            continue;
        };
        let selecting: Vec<&Decodedpolicy> = decoded_policies
            .iter()
            .filter(|p| {
                p.namespace == workload.namespace && compatible(&p.selector, &workload.labels)
            })
            .collect();
        if !selecting.iter().any(|p| p.egress_isolates) {
            errors.push(
                Diagnostic::error(
                    "E0120",
                    agent.name.span,
                    format!(
                        "no NetworkPolicy with `Egress` selects the pods of agent `{}`: their egress would be unrestricted",
                        agent.name.local
                    ),
                )
                .with_label("egress not isolated"),
            );
            continue;
        }
        let mut decoded = Decoded::default();
        for p in &selecting {
            decoded.set.extend(&p.allowed);
            if let Some(a) = &p.agent {
                if !p.allowed.is_empty() {
                    decoded.contributors.push(a.clone());
                }
            } else if !p.allowed.is_empty() {
                decoded.contributors.push(p.name.clone());
            }
        }
        out.insert(agent.id, decoded);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Could one pod carry all labels of both selectors? (No key with two different values.)
pub(crate) fn compatible(a: &BTreeMap<String, String>, b: &egress_check::Labels) -> bool {
    a.iter().all(|(k, v)| b.get(k).is_none_or(|w| w == v))
}

pub(crate) fn undecodable(span: egress_check::Span, file: &str, why: &str) -> Diagnostic {
    Diagnostic::error(
        "E0111",
        span,
        format!("cannot decode emitted artifact `{file}` for validation: {why}"),
    )
    .with_help("this is a bug in egc's lowering; please report it with the policy")
}

fn decode_policy(object: &NetworkPolicy) -> Result<Decodedpolicy, String> {
    let namespace = object
        .metadata
        .namespace
        .clone()
        .ok_or("a NetworkPolicy without a namespace")?;
    let spec = object
        .spec
        .as_ref()
        .ok_or("a NetworkPolicy without a spec")?;
    let selector = match &spec.pod_selector {
        None => BTreeMap::new(),
        Some(sel) => plain_labels(sel)?,
    };
    let egress_isolates = match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == "Egress"),
        // Without policyTypes, Egress applies exactly when there are egress rules.
        None => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
    };
    let mut allowed = ConnectionSet::default();
    if egress_isolates {
        for rule in spec.egress.iter().flatten() {
            let peers = match &rule.to {
                Some(p) if !p.is_empty() => p,
                _ => return Err("an egress rule without `to` allows every destination".into()),
            };
            let ports = decode_ports(rule.ports.as_deref())?;
            for peer in peers {
                for target in decode_peer(peer, &namespace)? {
                    for (protocol, set) in &ports {
                        allowed.add(*protocol, target.clone(), set.clone());
                    }
                }
            }
        }
    }
    Ok(Decodedpolicy {
        name: object.metadata.name.clone().unwrap_or_default(),
        namespace,
        agent: object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(AGENT_ANNOTATION).cloned()),
        selector,
        egress_isolates,
        allowed,
    })
}

fn plain_labels(sel: &LabelSelector) -> Result<BTreeMap<String, String>, String> {
    if sel
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err("matchExpressions are not emitted by egc and not decoded".into());
    }
    Ok(sel.match_labels.clone().unwrap_or_default())
}

fn decode_ports(ports: Option<&[NetworkPolicyPort]>) -> Result<Vec<(Protocol, PortSet)>, String> {
    let all = PortSet::from_intervals([(1, 65535)]);
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return Ok(vec![(Protocol::Tcp, all.clone()), (Protocol::Udp, all)]);
    };
    let mut by_protocol: BTreeMap<Protocol, PortSet> = BTreeMap::new();
    for port in ports {
        let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            other => return Err(format!("protocol {other} is not decoded")),
        };
        let range = match &port.port {
            None => (1, 65535),
            Some(IntOrString::String(name)) => {
                return Err(format!("named port `{name}` cannot be validated"))
            }
            Some(IntOrString::Int(p)) => {
                let start = u16::try_from(*p).map_err(|_| format!("port {p} out of range"))?;
                let end = match port.end_port {
                    None => start,
                    Some(e) => u16::try_from(e).map_err(|_| format!("endPort {e} out of range"))?,
                };
                (start, end)
            }
        };
        let entry = by_protocol.entry(protocol).or_default();
        *entry = entry.union(&PortSet::from_intervals([range]));
    }
    Ok(by_protocol.into_iter().collect())
}

fn decode_peer(peer: &NetworkPolicyPeer, own_namespace: &str) -> Result<Vec<TargetSet>, String> {
    if let Some(block) = &peer.ip_block {
        if peer.namespace_selector.is_some() || peer.pod_selector.is_some() {
            return Err("ipBlock combined with selectors in one peer".into());
        }
        let network = block
            .cidr
            .parse()
            .map_err(|_| format!("invalid cidr {}", block.cidr))?;
        let mut except = Vec::new();
        for e in block.except.iter().flatten() {
            except.push(e.parse().map_err(|_| format!("invalid except {e}"))?);
        }
        let cidr = egress_check::CidrSet { network, except };
        return Ok(vec![TargetSet::Ip(IpSet::from_cidr(&cidr))]);
    }
    let namespace = match &peer.namespace_selector {
        None => own_namespace.to_string(),
        Some(sel) => {
            let labels = plain_labels(sel)?;
            match (labels.len(), labels.get(NAMESPACE_NAME_LABEL)) {
                (1, Some(ns)) => ns.clone(),
                _ => return Err(
                    "a namespace selector other than by namespace name selects unknown namespaces"
                        .into(),
                ),
            }
        }
    };
    let labels = match &peer.pod_selector {
        None => BTreeMap::new(),
        Some(sel) => plain_labels(sel)?,
    };
    Ok(vec![TargetSet::Workload(WorkloadSelector {
        namespace,
        labels: labels.into(),
    })])
}

/// The Kubernetes NetworkPolicy backend.
pub struct K8s;

impl crate::backend::Backend for K8s {
    fn target(&self) -> Target {
        Target::K8s
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
        _config: &TargetConfig,
        artifacts: &Artifacts,
    ) -> Result<crate::backend::Decoding, Vec<Diagnostic>> {
        decode(policy, artifacts).map(crate::backend::Decoding::Connections)
    }
    fn identifies(&self, agent: &egress_check::Agent) -> bool {
        agent.identity.workload.is_some()
    }
}
