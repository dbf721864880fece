//! The user-space record of each attachment, kept next to the pins so that another
//! process (`egc exception apply`, `egc enforce status`) can recompute the trie.
//!
//! `/run/egc/enforce/<attachment>.json` holds the agent, the cgroup, the policy path,
//! the base allow rules and the exceptions currently installed. It is rewritten
//! atomically (temporary file + rename) under an exclusive `flock` on
//! `/run/egc/enforce/<attachment>.lock`. Like the bpffs pins, it does not survive a
//! reboot, and neither do the attachments it describes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use egress_check::Protocol;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::loader::EnforceError;
use crate::maps::{parse_ports, protocol_serde, EbpfMaps};
use crate::rules::{compile, AllowRule, TrieContents};

pub fn state_dir() -> PathBuf {
    std::env::var_os("EGC_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/egc/enforce"))
}

/// A rule installed for an exception.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRule {
    pub network: String,
    #[serde(with = "protocol_serde")]
    pub protocol: Protocol,
    pub ports: String,
}

/// An exception token installed in this attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveException {
    pub token_id: String,
    pub exception: String,
    pub slot: u16,
    pub rules: Vec<ExceptionRule>,
    /// Host names the token opens in the attachment's DNS gateway (when it serves
    /// names): their answered addresses are reachable through the name gate, gated by
    /// the exception slot, until the token ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<NameException>,
    pub expires_unix: u64,
    pub max_uses: Option<u32>,
    pub pid: u32,
}

/// A host name (or pattern) an exception token opens at run time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NameException {
    /// An exact host name (`--to HOST:PORT`) or the destination's host pattern.
    pub pattern: String,
    /// The exception's `to` destination (qualified name).
    pub destination: String,
    #[serde(with = "protocol_serde")]
    pub protocol: Protocol,
    /// `443` or `8000-8080`.
    pub ports: String,
    /// The destination says `sni optional`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sni_optional: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentState {
    pub name: String,
    pub agent: String,
    pub agent_id: u32,
    pub cgroup: String,
    /// The policy directory the maps came from (used to verify exception tokens).
    pub policy: Option<String>,
    /// `enforce` for `egc enforce apply`, `run` for `egc run`.
    pub kind: String,
    pub created_unix: u64,
    pub maps: EbpfMaps,
    pub exceptions: Vec<ActiveException>,
}

fn path_of(name: &str) -> PathBuf {
    state_dir().join(format!("{name}.json"))
}

/// Holds the attachment's lock until dropped.
pub struct StateLock {
    _file: fs::File,
}

pub fn lock(name: &str) -> Result<StateLock, EnforceError> {
    let dir = state_dir();
    fs::create_dir_all(&dir)
        .map_err(|e| EnforceError::Io(format!("create {}", dir.display()), e))?;
    let path = dir.join(format!("{name}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EnforceError::Io(format!("open {}", path.display()), e))?;
    crate::sys::flock_exclusive(&file)
        .map_err(|e| EnforceError::Io(format!("lock {}", path.display()), e))?;
    Ok(StateLock { _file: file })
}

pub fn load(name: &str) -> Result<AttachmentState, EnforceError> {
    let path = path_of(name);
    let text = fs::read_to_string(&path)
        .map_err(|e| EnforceError::Io(format!("read {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| EnforceError::Bpf(format!("corrupt state {}: {e}", path.display())))
}

pub fn save(state: &AttachmentState) -> Result<(), EnforceError> {
    let dir = state_dir();
    fs::create_dir_all(&dir)
        .map_err(|e| EnforceError::Io(format!("create {}", dir.display()), e))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| EnforceError::Io(format!("chmod {}", dir.display()), e))?;
    let path = path_of(&state.name);
    let tmp = dir.join(format!(".{}.json.tmp", state.name));
    let text = serde_json::to_string_pretty(state)
        .map_err(|e| EnforceError::Bpf(format!("serialise state: {e}")))?;
    let write = || -> std::io::Result<()> {
        // Mode 0600: the state names the policy and the open exceptions.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| EnforceError::Io(format!("write {}", path.display()), e))
}

pub fn remove(name: &str) {
    let _ = fs::remove_file(path_of(name));
    let _ = fs::remove_file(state_dir().join(format!("{name}.lock")));
}

/// Every recorded attachment, sorted by name.
pub fn list() -> Vec<AttachmentState> {
    let mut out: Vec<AttachmentState> = fs::read_dir(state_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .filter_map(|n| load(&n).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl AttachmentState {
    /// Base rules plus every installed exception's rules (gated by its slot).
    pub fn allow_rules(&self) -> Result<Vec<AllowRule>, EnforceError> {
        let mut rules = self.maps.allow_rules().map_err(EnforceError::Bpf)?;
        for exception in &self.exceptions {
            for rule in &exception.rules {
                let network: IpNet = rule
                    .network
                    .parse()
                    .map_err(|_| EnforceError::Bpf(format!("bad network {:?}", rule.network)))?;
                let ports = parse_ports(&rule.ports)
                    .ok_or_else(|| EnforceError::Bpf(format!("bad ports {:?}", rule.ports)))?;
                rules.push(AllowRule {
                    network,
                    protocol: rule.protocol,
                    ports,
                    exception_slot: exception.slot,
                });
            }
        }
        Ok(rules)
    }

    /// The trie this attachment should hold now.
    pub fn desired_trie(&self) -> Result<TrieContents, EnforceError> {
        compile(&self.allow_rules()?).map_err(|errors| {
            EnforceError::Bpf(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }

    /// The lowest exception slot not in use.
    pub fn free_slot(&self) -> Option<u16> {
        (1..crate::layout::MAX_EXCEPTION_SLOTS as u16)
            .find(|s| !self.exceptions.iter().any(|e| e.slot == *s))
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
