//! Workflow steps granted by the orchestrator.
//!
//! A workflow that names an `orchestrator` authority can have its steps opened at run
//! time, one at a time: `egc workflow grant` issues a step token signed with the
//! authority's key (the same key files as exception tokens), naming the workflow, the
//! step (1-based), the agent that performs it, a workflow run id and a lifetime within
//! the authority's `max_ttl`. Applying the token opens exactly the destinations of the
//! step's capability for that agent, gated by an exception slot, until the step is ended
//! or the token expires; the egress gate then drops the packets of the connections it
//! opened. In an `ordered` workflow, step N applies only after step N-1 of the same run.
//!
//! Tokens for another agent, another workflow, a step out of order, a replayed step or a
//! key other than the orchestrator's are refused; every grant, apply, end, expiry and
//! refusal is an audit line (`egc exception log`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use egress_check::{CheckedPolicy, EndpointKind, StepAction, Workflow};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::exception::{
    install_rules, random_bytes, record, refused, ApplyConfig, Claims, ExceptionError, Installed,
};
use crate::state::ExceptionRule;

/// The claims of a step token (signed as serialised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepClaims {
    pub v: u32,
    pub kind: String,
    pub id: String,
    pub workflow: String,
    /// 1-based.
    pub step: u32,
    pub agent: String,
    /// The workflow run this step belongs to (ordering is per run).
    pub run: String,
    pub issued_at: u64,
    pub expires_at: u64,
    pub orchestrator: String,
}

impl StepClaims {
    /// The same token seen as an exception installation (slot, ledger, audit, expiry).
    pub fn as_claims(&self) -> Claims {
        Claims {
            v: 1,
            id: self.id.clone(),
            exception: format!("step {}#{} (run {})", self.workflow, self.step, self.run),
            agents: vec![self.agent.clone()],
            to: None,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            max_uses: None,
            approver: self.orchestrator.clone(),
        }
    }
}

pub struct StepGrant<'a> {
    pub workflow: &'a str,
    pub step: u32,
    pub agent: &'a str,
    pub key: &'a SigningKey,
    pub ttl_secs: u64,
    pub run: &'a str,
    pub now: u64,
}

fn find_workflow<'p>(
    policy: &'p CheckedPolicy,
    name: &str,
) -> Result<&'p Workflow, ExceptionError> {
    policy
        .workflows
        .iter()
        .find(|w| w.name.local == name || w.name.qualified == name)
        .ok_or_else(|| refused(format!("no workflow `{name}` in the policy")))
}

fn orchestrator_key(
    policy: &CheckedPolicy,
    workflow: &Workflow,
) -> Result<(String, VerifyingKey, u64), ExceptionError> {
    let reference = workflow.orchestrator.as_ref().ok_or_else(|| {
        refused(format!(
            "workflow `{}` names no `orchestrator`, so its steps cannot be granted at run time",
            workflow.name.local
        ))
    })?;
    crate::exception::authority_key(
        policy,
        reference.id,
        "the workflow's orchestrator is not in the policy",
    )
}

/// The destinations a step opens: its capability's CIDR destinations (host names and
/// workloads cannot be opened at the socket and are left closed).
fn step_rules(
    policy: &CheckedPolicy,
    workflow: &Workflow,
    step: u32,
) -> Result<Vec<ExceptionRule>, ExceptionError> {
    let index = usize::try_from(step.saturating_sub(1)).unwrap_or(usize::MAX);
    let step_decl = workflow
        .steps
        .get(index)
        .filter(|_| step >= 1)
        .ok_or_else(|| {
            refused(format!(
                "workflow `{}` has no step {step}",
                workflow.name.local
            ))
        })?;
    let StepAction::Uses(cap) = &step_decl.action else {
        return Err(refused(format!(
            "step {step} of workflow `{}` is a delegation; it opens no destination",
            workflow.name.local
        )));
    };
    let capability = policy
        .capability(cap.id)
        .ok_or_else(|| refused("the step's capability is not in the policy"))?;
    let mut rules = Vec::new();
    for connect in &capability.connects {
        let Some(dest) = policy.destination(connect.dest) else {
            continue;
        };
        for endpoint in &dest.endpoints {
            if let EndpointKind::Cidr(cidr) = &endpoint.kind {
                for network in crate::rules::subtract(cidr.network, &cidr.except) {
                    for protocol in &dest.protocols {
                        for ports in &dest.ports {
                            rules.push(ExceptionRule {
                                network: network.to_string(),
                                protocol: *protocol,
                                ports: if ports.start == ports.end {
                                    ports.start.to_string()
                                } else {
                                    format!("{}-{}", ports.start, ports.end)
                                },
                            });
                        }
                    }
                }
            }
        }
    }
    if rules.is_empty() {
        return Err(refused(format!(
            "step {step} of workflow `{}` opens no address the socket can enforce",
            workflow.name.local
        )));
    }
    Ok(rules)
}

fn step_agent(policy: &CheckedPolicy, workflow: &Workflow, step: u32) -> Option<String> {
    let index = usize::try_from(step.checked_sub(1)?).ok()?;
    let decl = workflow.steps.get(index)?;
    policy
        .agents
        .iter()
        .find(|a| a.id == decl.agent)
        .map(|a| a.name.qualified.clone())
}

/// Issues a step token, checking everything `apply` will check.
pub fn grant(
    policy: &CheckedPolicy,
    request: &StepGrant<'_>,
) -> Result<(String, StepClaims), ExceptionError> {
    let workflow = find_workflow(policy, request.workflow)?;
    let (orchestrator, key, max_ttl) = orchestrator_key(policy, workflow)?;
    if request.key.verifying_key() != key {
        return Err(refused(format!(
            "the key is not the key of `{orchestrator}`, the orchestrator of workflow `{}`",
            workflow.name.local
        )));
    }
    let max_ttl = max_ttl.min(egress_check::MAX_EXCEPTION_TTL_SECS);
    if request.ttl_secs == 0 || request.ttl_secs > max_ttl {
        return Err(refused(format!(
            "ttl {}s exceeds the orchestrator's maximum ({max_ttl}s)",
            request.ttl_secs
        )));
    }
    step_rules(policy, workflow, request.step)?;
    let agent = policy
        .agent_by_name(request.agent)
        .ok_or_else(|| refused(format!("no agent `{}` in the policy", request.agent)))?;
    if step_agent(policy, workflow, request.step).as_deref() != Some(agent.name.qualified.as_str())
    {
        return Err(refused(format!(
            "step {} of workflow `{}` is not performed by agent `{}`",
            request.step, workflow.name.local, request.agent
        )));
    }
    if request.run.is_empty()
        || !request
            .run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(refused("the run id must be letters, digits, `-` and `_`"));
    }
    let id: [u8; 16] = random_bytes()?;
    let claims = StepClaims {
        v: 1,
        kind: "step".into(),
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        workflow: workflow.name.qualified.clone(),
        step: request.step,
        agent: agent.name.qualified.clone(),
        run: request.run.to_string(),
        issued_at: request.now,
        expires_at: request.now.saturating_add(request.ttl_secs),
        orchestrator,
    };
    let payload = serde_json::to_vec(&claims)
        .map_err(|e| ExceptionError::Failed(format!("serialise claims: {e}")))?;
    let signature = request.key.sign(&payload);
    Ok((
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ),
        claims,
    ))
}

/// Reads the claims without verifying them (for audit lines about refused tokens).
pub fn peek(token: &str) -> Option<StepClaims> {
    let (payload, _) = token.trim().split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Verifies a step token at time `now`.
pub fn verify(policy: &CheckedPolicy, token: &str, now: u64) -> Result<StepClaims, ExceptionError> {
    let (payload, signature) = crate::exception::decode_token(token)?;
    let claims: StepClaims =
        serde_json::from_slice(&payload).map_err(|_| refused("malformed step token claims"))?;
    if claims.kind != "step" {
        return Err(refused("not a step token"));
    }
    let workflow = find_workflow(policy, &claims.workflow)?;
    let (orchestrator, key, max_ttl) = orchestrator_key(policy, workflow)?;
    key.verify(&payload, &Signature::from_bytes(&signature))
        .map_err(|_| refused(format!("bad signature: not signed by `{orchestrator}`")))?;
    if claims.expires_at <= now {
        return Err(refused("step token expired"));
    }
    if claims.issued_at > now.saturating_add(60)
        || claims.expires_at.saturating_sub(claims.issued_at)
            > max_ttl.min(egress_check::MAX_EXCEPTION_TTL_SECS)
    {
        return Err(refused(
            "step token lifetime outside the orchestrator's maximum",
        ));
    }
    if step_agent(policy, workflow, claims.step).as_deref() != Some(claims.agent.as_str()) {
        return Err(refused(format!(
            "step {} of workflow `{}` is not performed by agent `{}`",
            claims.step, workflow.name.local, claims.agent
        )));
    }
    Ok(claims)
}

/// The per-run progress of an ordered workflow: the steps applied so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunProgress {
    applied: Vec<u32>,
}

fn progress_path(config: &ApplyConfig, claims: &StepClaims) -> std::path::PathBuf {
    let workflow: String = claims
        .workflow
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    config
        .ledger
        .dir
        .join(format!("run-{workflow}-{}.json", claims.run))
}

fn refuse_and_audit(
    config: &ApplyConfig,
    claims: Option<&StepClaims>,
    error: ExceptionError,
) -> ExceptionError {
    let _ = config.audit.append(&record(
        "refuse",
        claims.map(StepClaims::as_claims).as_ref(),
        json!({ "reason": error.to_string(), "stage": "step" }),
    ));
    error
}

/// Verifies the token, checks the order within its run, and opens the step's
/// destinations for its agent. Every outcome is audited.
pub fn apply(
    policy: &CheckedPolicy,
    token: &str,
    config: &ApplyConfig,
    now: u64,
) -> Result<Installed, ExceptionError> {
    let claims = match verify(policy, token, now) {
        Ok(c) => c,
        Err(e) => return Err(refuse_and_audit(config, peek(token).as_ref(), e)),
    };
    let result = (|| {
        let workflow = find_workflow(policy, &claims.workflow)?;
        let rules = step_rules(policy, workflow, claims.step)?;
        let path = progress_path(config, &claims);
        let mut progress: RunProgress = match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ExceptionError::Failed(format!(
                    "run progress {} is unreadable: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunProgress::default(),
            Err(e) => return Err(ExceptionError::Failed(format!("{}: {e}", path.display()))),
        };
        if progress.applied.contains(&claims.step) {
            return Err(refused(format!(
                "step {} of run `{}` was already applied (replayed)",
                claims.step, claims.run
            )));
        }
        if workflow.ordered {
            let expected = progress.applied.iter().max().map_or(1, |m| m + 1);
            if claims.step != expected {
                return Err(refused(format!(
                    "workflow `{}` is ordered: run `{}` expects step {expected}, not step {}",
                    workflow.name.local, claims.run, claims.step
                )));
            }
        }
        let installed = install_rules(&claims.as_claims(), rules, config, now)?;
        progress.applied.push(claims.step);
        progress.applied.sort_unstable();
        write_progress(&path, &progress)?;
        Ok(installed)
    })();
    match result {
        Ok(installed) => {
            config.audit.append(&record(
                "use",
                Some(&claims.as_claims()),
                json!({
                    "stage": "step",
                    "workflow": claims.workflow,
                    "step": claims.step,
                    "run": claims.run,
                    "attachment": installed.attachment,
                    "rules": installed.rules.iter().map(|r| format!("{} {} {}", r.network, r.protocol, r.ports)).collect::<Vec<_>>(),
                }),
            ))?;
            Ok(installed)
        }
        Err(e) => Err(refuse_and_audit(config, Some(&claims), e)),
    }
}

fn write_progress(path: &std::path::Path, progress: &RunProgress) -> Result<(), ExceptionError> {
    let fail = |e: std::io::Error| ExceptionError::Failed(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(
        serde_json::to_string(progress)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

/// Ends an applied step from another process: closes its destinations and its
/// connections, and records the end.
pub fn end(token: &str, config: &ApplyConfig) -> Result<u64, ExceptionError> {
    let claims = peek(token).ok_or_else(|| refused("malformed step token"))?;
    let installed = crate::exception::find_installed(&claims.id, &claims.as_claims())
        .ok_or_else(|| refused(format!("step token {} is not applied anywhere", claims.id)))?;
    crate::exception::remove(&installed, config, "end")
}
