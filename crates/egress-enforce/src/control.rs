//! Attach, update, detach and report, keeping the pins and the state record in step.
//! This is what `egc enforce` and `egc run` call.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::loader::{self, AttachConfig, EnforceError, LinkStatus};
use crate::maps::EbpfMaps;
use crate::state::{self, ActiveException, AttachmentState};

/// How an attachment came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Enforce,
    Run,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Enforce => "enforce",
            Kind::Run => "run",
        }
    }
}

/// What to apply.
pub struct ApplyRequest<'a> {
    pub name: &'a str,
    pub maps: &'a EbpfMaps,
    /// The resolved cgroup directory.
    pub cgroup: &'a Path,
    pub policy: Option<String>,
    pub kind: Kind,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// A new attachment.
    Attached,
    /// An existing attachment on the same cgroup got new rules (exceptions kept).
    Updated,
}

/// Attaches (or updates in place) and records the state.
pub fn apply(request: &ApplyRequest<'_>) -> Result<Applied, EnforceError> {
    let _lock = state::lock(request.name)?;
    let cgroup_text = request.cgroup.display().to_string();
    let existing = state::load(request.name).ok();
    if let (Some(mut current), true) = (existing, loader::list().iter().any(|n| n == request.name))
    {
        if current.cgroup != cgroup_text {
            return Err(EnforceError::AlreadyAttached(request.name.to_string()));
        }
        current.maps = request.maps.clone();
        current.agent = request.maps.agent.clone();
        current.policy = request.policy.clone().or(current.policy);
        let trie = current.desired_trie()?;
        let mut attachment = loader::open(request.name)?;
        attachment.sync_rules(&trie)?;
        state::save(&current)?;
        return Ok(Applied::Updated);
    }
    let state = AttachmentState {
        name: request.name.to_string(),
        agent: request.maps.agent.clone(),
        agent_id: request.maps.agent_id,
        cgroup: cgroup_text,
        policy: request.policy.clone(),
        kind: request.kind.as_str().to_string(),
        created_unix: state::now_unix(),
        maps: request.maps.clone(),
        exceptions: Vec::new(),
    };
    let trie = state.desired_trie()?;
    loader::attach(
        &AttachConfig {
            name: request.name.to_string(),
            agent_id: request.maps.agent_id,
            cgroup: request.cgroup.to_path_buf(),
            flags: if request.maps.linux_caps.iter().any(|c| c == "CAP_NET_RAW") {
                loader::FLAG_ALLOW_RAW
            } else {
                0
            },
        },
        &trie,
    )?;
    if let Err(error) = state::save(&state) {
        let _ = loader::detach(request.name);
        return Err(error);
    }
    Ok(Applied::Attached)
}

/// Detaches and forgets an attachment.
pub fn detach(name: &str) -> Result<(), EnforceError> {
    let _lock = state::lock(name)?;
    let result = loader::detach(name);
    state::remove(name);
    crate::names::EventLog::remove(name);
    result
}

/// One attachment as `egc enforce status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AttachmentStatus {
    pub name: String,
    pub agent: Option<String>,
    pub cgroup: Option<String>,
    pub kind: Option<String>,
    pub policy: Option<String>,
    pub rule_entries: usize,
    pub links: Vec<LinkStatus>,
    pub counters: BTreeMap<&'static str, u64>,
    pub exceptions: Vec<ActiveException>,
    /// Audit mode: would-be denials are let through and reported.
    pub audit: bool,
    /// The DNS gateway and name gate ports, when names are served.
    pub names: Option<(u16, u16)>,
    /// Addresses the DNS gateway has learned (`address tcp 443`).
    pub learned: Vec<String>,
}

/// Every attachment pinned under `/sys/fs/bpf/egc`, sorted by name.
pub fn status() -> Vec<AttachmentStatus> {
    loader::list()
        .into_iter()
        .filter_map(|name| {
            let attachment = loader::open(&name).ok()?;
            let state = state::load(&name).ok();
            let config = attachment.config().ok();
            let learned = attachment
                .learned()
                .into_iter()
                .map(|(addr, set)| {
                    let rules: Vec<String> = set
                        .active()
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {}-{}",
                                crate::rules::protocol_from_number(r.protocol)
                                    .map_or("?", |p| p.as_str()),
                                r.port_lo,
                                r.port_hi
                            )
                        })
                        .collect();
                    format!("{} {}", crate::rules::unmapped_addr(addr), rules.join(", "))
                })
                .collect();
            Some(AttachmentStatus {
                audit: config.is_some_and(|c| c.flags & loader::FLAG_AUDIT != 0),
                names: config
                    .filter(|c| c.flags & loader::FLAG_NAMES != 0)
                    .map(|c| (c.dns_port, c.gate_port)),
                learned,
                agent: state.as_ref().map(|s| s.maps.agent_name.clone()),
                cgroup: state.as_ref().map(|s| s.cgroup.clone()),
                kind: state.as_ref().map(|s| s.kind.clone()),
                policy: state.as_ref().and_then(|s| s.policy.clone()),
                rule_entries: attachment.rule_entries(),
                links: attachment.links(),
                counters: attachment.counters(),
                exceptions: state.map(|s| s.exceptions).unwrap_or_default(),
                name,
            })
        })
        .collect()
}

/// Names of the attachments enforcing `agent` (by qualified or local name).
pub fn attachments_of(agent: &str) -> Vec<String> {
    state::list()
        .into_iter()
        .filter(|s| s.agent == agent || s.maps.agent_name == agent)
        .filter(|s| loader::list().contains(&s.name))
        .map(|s| s.name)
        .collect()
}
