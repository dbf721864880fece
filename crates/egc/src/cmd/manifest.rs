//! `egc manifest verify DIR --key PUB [--policy PATH]`: check a signed build directory
//! (`egc build --sign`) against its intent manifest; and the helpers `egc build`,
//! `egc enforce apply` and `egc run` use to write and check one.
//!
//! Exit codes: 0 the signature holds and everything matches; 1 something differs (each
//! difference is printed); 2 usage, I/O or a malformed manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_check::CheckedPolicy;
use egress_enforce::manifest::{
    self, digest, AgentIntent, Intent, ManifestError, INTENT_FILE, SIGNATURE_FILE,
};

use crate::common::{self, LoadedPolicy};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ManifestCommand,
}

#[derive(clap::Subcommand)]
pub enum ManifestCommand {
    /// Check the signature of DIR/intent.json and every artifact in DIR against it.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// A directory written by `egc build --sign`.
    pub dir: PathBuf,
    /// The public key (`ed25519:...`, or a file holding it).
    #[arg(long)]
    pub key: String,
    /// Also check that this policy is the one that was signed (sources and every agent's
    /// connection set).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        ManifestCommand::Verify(a) => verify(a),
    }
}

/// Reads `--key`: the key text itself, or a file holding it.
pub(crate) fn read_public_key(arg: &str) -> Result<manifest::PublicKey, String> {
    let text = if arg.trim_start().starts_with("ed25519:") {
        arg.to_string()
    } else {
        std::fs::read_to_string(arg).map_err(|e| format!("key {arg}: {e}"))?
    };
    manifest::parse_public_key(&text).map_err(|e| e.to_string())
}

/// The policy's source digests, keyed by path relative to the policy directory.
pub(crate) fn policy_digests(loaded: &LoadedPolicy) -> BTreeMap<String, String> {
    let prefix = format!("{}/", loaded.dir);
    loaded
        .result
        .files
        .iter()
        .map(|f| {
            let path = if loaded.dir == "." || f.is_stdlib {
                f.path.clone()
            } else {
                f.path
                    .strip_prefix(&prefix)
                    .unwrap_or(f.path.as_str())
                    .to_string()
            };
            (path, digest(f.text.as_bytes()))
        })
        .collect()
}

/// An agent's name in the manifest: its qualified name without the policy directory's
/// module prefix, so the same policy checked from another directory gives the same key.
fn agent_key(loaded: &LoadedPolicy, qualified: &str) -> String {
    if loaded.dir == "." {
        return qualified.to_string();
    }
    let prefix = format!("{}.", loaded.dir.replace(['/', '\\'], "."));
    qualified
        .strip_prefix(&prefix)
        .unwrap_or(qualified)
        .to_string()
}

/// Every agent's connection set digest, from the eBPF map contents `egc build --target
/// ebpf` computes (host names and workloads kept closed): every trie entry and every
/// endpoint kept closed, with its ports, syscalls, capabilities and unix sockets. Agents
/// are named without the policy directory, so nothing depends on where the policy lives.
pub(crate) fn agent_intents(
    loaded: &LoadedPolicy,
    policy: &CheckedPolicy,
) -> Result<BTreeMap<String, AgentIntent>, String> {
    let config = egress_enforce::maps::LowerConfig {
        deny_unenforceable: true,
        ..Default::default()
    };
    let mut out = BTreeMap::new();
    for agent in &policy.agents {
        let maps = egress_enforce::maps::lower_with(policy, &agent.name.qualified, &config)
            .map(|(maps, _)| maps)
            .map_err(|_| format!("agent `{}` cannot be lowered", agent.name.qualified))?;
        // What the agent may reach, without names that depend on where the policy lives:
        // the exact trie entries, what is kept closed, ports, syscalls, capabilities and
        // unix sockets.
        let closed: Vec<(&str, &str)> = maps
            .not_enforced
            .iter()
            .map(|n| (n.endpoint.as_str(), n.reason.as_str()))
            .collect();
        let connections = serde_json::json!({
            "entries": maps.entries,
            "kept_closed": closed,
            "landlock_tcp_ports": maps.landlock_tcp_ports,
            "syscalls": maps.syscalls,
            "linux_caps": maps.linux_caps,
            "unix_sockets": policy.unix_sockets_of(agent),
        });
        let text = serde_json::to_string(&connections).unwrap_or_default();
        out.insert(
            agent_key(loaded, &agent.name.qualified),
            AgentIntent {
                connections: digest(text.as_bytes()),
                image: agent.identity.image.clone(),
            },
        );
    }
    Ok(out)
}

/// Builds the manifest of one policy's build.
pub(crate) fn intent_for(
    loaded: &LoadedPolicy,
    policy: &CheckedPolicy,
    artifacts: &BTreeMap<PathBuf, String>,
    sbom: Option<&[u8]>,
) -> Result<Intent, String> {
    Ok(Intent {
        format: manifest::FORMAT.to_string(),
        policy: policy_digests(loaded),
        agents: agent_intents(loaded, policy)?,
        artifacts: artifacts
            .iter()
            .map(|(path, text)| (path_text(path), digest(text.as_bytes())))
            .collect(),
        sbom: sbom.map(digest),
    })
}

fn path_text(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Opens `DIR/intent.json` with its signature.
pub(crate) fn open_manifest(dir: &Path, key: &str) -> Result<Intent, String> {
    let key = read_public_key(key)?;
    let text = std::fs::read_to_string(dir.join(INTENT_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(INTENT_FILE).display()))?;
    let signature = std::fs::read_to_string(dir.join(SIGNATURE_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(SIGNATURE_FILE).display()))?;
    manifest::open(&text, &signature, &key).map_err(|e| e.to_string())
}

/// The differences between a loaded policy and the manifest: its sources, and the
/// connection set of `agent` (every agent when `None`).
pub(crate) fn policy_differences(
    intent: &Intent,
    loaded: &LoadedPolicy,
    policy: &CheckedPolicy,
    agent: Option<&str>,
) -> Vec<String> {
    let mut out = manifest::compare("policy file", &intent.policy, &policy_digests(loaded));
    let only = agent
        .and_then(|a| policy.agent_by_name(a))
        .map(|a| agent_key(loaded, &a.name.qualified));
    match agent_intents(loaded, policy) {
        Ok(agents) => {
            for (name, here) in &agents {
                let wanted = match &only {
                    Some(key) => key == name,
                    None => true,
                };
                if !wanted {
                    continue;
                }
                match intent.agents.get(name) {
                    None => out.push(format!("agent `{name}` was not signed")),
                    Some(signed) if signed != here => {
                        out.push(format!("agent `{name}`'s connection set changed"))
                    }
                    Some(_) => {}
                }
            }
        }
        Err(e) => out.push(e),
    }
    out
}

pub(crate) fn files_in(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|e| format!("{}: {e}", current.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let name = path_text(relative);
            if name == INTENT_FILE || name == SIGNATURE_FILE || name == ".egc-build" {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.insert(name, digest(&bytes));
        }
    }
    Ok(out)
}

fn verify(args: VerifyArgs) -> ExitCode {
    let intent = match open_manifest(&args.dir, &args.key) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.contains("not by the given key") {
                1
            } else {
                2
            });
        }
    };
    let here = match files_in(&args.dir) {
        Ok(f) => f,
        Err(e) => return common::usage_error(e),
    };
    let mut differences = manifest::compare("artifact", &intent.artifacts, &here);
    if let Some(path) = &args.policy {
        let policies = match common::load_policies(std::slice::from_ref(path), args.root.as_deref())
        {
            Ok(p) => p,
            Err(code) => return code,
        };
        match policies.as_slice() {
            [loaded] => match &loaded.result.policy {
                Some(policy) => {
                    differences.extend(policy_differences(&intent, loaded, policy, None))
                }
                None => {
                    common::print_diagnostics(&policies, common::Format::Human);
                    return ExitCode::from(1);
                }
            },
            _ => return common::usage_error("--policy must name one policy"),
        }
    }
    if differences.is_empty() {
        eprintln!(
            "manifest verified: signature holds; {} artifact(s), {} policy file(s), {} agent(s) match",
            intent.artifacts.len(),
            intent.policy.len(),
            intent.agents.len()
        );
        ExitCode::SUCCESS
    } else {
        for line in &differences {
            eprintln!("error: {line}");
        }
        eprintln!("{}", ManifestError::Mismatch(differences.clone()));
        ExitCode::from(1)
    }
}
