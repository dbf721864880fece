//! Run-time exceptions: ed25519-signed tokens, their verification against the policy,
//! installation into an agent's eBPF maps, expiry, and the audit log.
//!
//! A token is `base64url(claims JSON) "." base64url(ed25519 signature over those bytes)`.
//! Its claims name the exception, the agents, an optional single destination, the
//! issue and expiry instants and the use limit. Only the policy decides which key may
//! sign for an exception (its `approver` authority's `key`): the token carries no key.
//!
//! `apply` installs the token's destination as rules gated by an exception slot. The
//! program itself refuses the slot's rules from the expiry instant on (it compares
//! `CLOCK_BOOTTIME`) and counts every connection through the slot, refusing those past
//! `max_uses`; user space removes the rules at expiry and records the count. So an
//! exception closes on time even if the applying process is killed.
//!
//! Every grant, use (installation), refusal, expiry and revocation appends one JSON line
//! to the audit log, opened with `O_APPEND` and `fsync`ed before the command returns.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use egress_check::{CheckedPolicy, EndpointKind, Exception, Protocol};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::layout::ExceptionSlot;
use crate::loader;
use crate::state::{self, ActiveException, ExceptionRule, NameException};

/// Claims of a token (signed as serialised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub v: u32,
    /// Random 128-bit id (hex): the replay ledger's key.
    pub id: String,
    pub exception: String,
    pub agents: Vec<String>,
    /// A single destination inside the exception's pattern; `None`: the whole pattern.
    pub to: Option<Target>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub max_uses: Option<u32>,
    pub approver: String,
}

/// `HOST_OR_IP:PORT[/tcp|udp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// An IP address or a host name.
    pub host: String,
    pub port: u16,
    #[serde(default, with = "option_protocol")]
    pub protocol: Option<Protocol>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => write!(f, "[{v6}]:{}", self.port)?,
            _ => write!(f, "{}:{}", self.host, self.port)?,
        }
        if let Some(p) = self.protocol {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

mod option_protocol {
    use egress_check::Protocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<Protocol>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(p.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Protocol>, D::Error> {
        match Option::<String>::deserialize(d)?.as_deref() {
            None => Ok(None),
            Some("tcp") => Ok(Some(Protocol::Tcp)),
            Some("udp") => Ok(Some(Protocol::Udp)),
            Some(other) => Err(serde::de::Error::custom(format!(
                "unknown protocol {other:?}"
            ))),
        }
    }
}

/// Parses `HOST_OR_IP:PORT[/tcp|udp]`, with `[v6]:PORT` for IPv6.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Some(Protocol::Tcp)),
        Some((rest, "udp")) => (rest, Some(Protocol::Udp)),
        Some((_, other)) => return Err(format!("unknown protocol {other:?} (tcp or udp)")),
        None => (text, None),
    };
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{text:?}: bad port"));
        }
        return Ok(Target {
            host: addr.ip().to_string(),
            port: addr.port(),
            protocol,
        });
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: expected HOST_OR_IP:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{text:?}: bad port"))?;
    if host.is_empty() || host.contains(['[', ']', ' ']) {
        return Err(format!("{text:?}: bad host"));
    }
    Ok(Target {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port,
        protocol,
    })
}

/// Parses `90s`, `15m`, `1h`, `1d` or plain seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (text.get(..i)?, text.get(i..)?),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).filter(|s| *s > 0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionError {
    /// The token or request is refused; the message says why.
    Refused(String),
    /// Something outside the token went wrong (I/O, kernel).
    Failed(String),
}

impl std::fmt::Display for ExceptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExceptionError::Refused(m) => write!(f, "refused: {m}"),
            ExceptionError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ExceptionError {}

pub(crate) fn refused(message: impl Into<String>) -> ExceptionError {
    ExceptionError::Refused(message.into())
}

// ---------------------------------------------------------------------------------------
// Keys

/// Random bytes from the kernel.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], ExceptionError> {
    let mut out = [0u8; N];
    let mut filled = 0usize;
    while filled < N {
        let rest = out.get_mut(filled..).unwrap_or(&mut []);
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            return Err(ExceptionError::Failed(format!(
                "getrandom: {}",
                std::io::Error::last_os_error()
            )));
        }
        filled += n as usize;
    }
    Ok(out)
}

/// A new keypair: (secret key file text, public key as written in a policy).
pub fn keygen() -> Result<(String, String), ExceptionError> {
    let seed: [u8; 32] = random_bytes()?;
    let key = SigningKey::from_bytes(&seed);
    Ok((
        format!("ed25519-secret:{}\n", STANDARD.encode(key.to_bytes())),
        public_key_text(&key.verifying_key()),
    ))
}

/// `ed25519:<base64>` as the policy's `key "..."` holds it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("ed25519:{}", STANDARD.encode(key.to_bytes()))
}

/// Reads a secret key file (`ed25519-secret:<base64 of 32 bytes>`).
pub fn parse_secret_key(text: &str) -> Result<SigningKey, ExceptionError> {
    let body = text
        .trim()
        .strip_prefix("ed25519-secret:")
        .ok_or_else(|| refused("the key file does not start with `ed25519-secret:`"))?;
    let bytes = STANDARD
        .decode(body.trim())
        .map_err(|_| refused("the key file is not valid base64"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| refused("the key file does not hold 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

// ---------------------------------------------------------------------------------------
// Audit log

/// The append-only audit log.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn default_path() -> PathBuf {
        PathBuf::from("/var/log/egc/exceptions.jsonl")
    }

    /// Appends one JSON line and fsyncs it.
    pub fn append(&self, record: &Value) -> Result<(), ExceptionError> {
        let fail = |e: std::io::Error| {
            ExceptionError::Failed(format!("audit log {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir).map_err(fail)?;
            }
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(fail)?;
        let mut line = serde_json::to_string(record)
            .map_err(|e| ExceptionError::Failed(format!("audit record: {e}")))?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)
    }

    /// Every record (for tests and `egc exception log`).
    pub fn read(&self) -> Vec<Value> {
        fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub(crate) fn record(event: &str, claims: Option<&Claims>, extra: Value) -> Value {
    let mut out = BTreeMap::new();
    out.insert("time".to_string(), json!(state::now_unix()));
    out.insert("event".to_string(), json!(event));
    if let Some(c) = claims {
        out.insert("token_id".to_string(), json!(c.id));
        out.insert("exception".to_string(), json!(c.exception));
        out.insert("agents".to_string(), json!(c.agents));
        out.insert("approver".to_string(), json!(c.approver));
        out.insert(
            "destination".to_string(),
            json!(c.to.as_ref().map(|t| t.to_string())),
        );
        out.insert("issued_at".to_string(), json!(c.issued_at));
        out.insert("expires_at".to_string(), json!(c.expires_at));
        out.insert("max_uses".to_string(), json!(c.max_uses));
    }
    if let Value::Object(map) = extra {
        for (k, v) in map {
            out.insert(k, v);
        }
    }
    json!(out)
}

// ---------------------------------------------------------------------------------------
// Grant and verify

/// What `grant` needs.
pub struct GrantRequest<'a> {
    pub exception: &'a str,
    pub key: &'a SigningKey,
    pub ttl_secs: u64,
    pub to: Option<Target>,
    pub agent: Option<&'a str>,
    pub now: u64,
}

fn find_exception<'p>(
    policy: &'p CheckedPolicy,
    name: &str,
) -> Result<&'p Exception, ExceptionError> {
    policy
        .exception_by_name(name)
        .ok_or_else(|| refused(format!("no exception `{name}` in the policy")))
}

fn exception_agents(policy: &CheckedPolicy, exception: &Exception) -> Vec<String> {
    let mut out: Vec<String> = exception
        .agents
        .iter()
        .filter_map(|a| policy.agent(a.id))
        .map(|a| a.name.qualified.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn approver_key(
    policy: &CheckedPolicy,
    exception: &Exception,
) -> Result<(String, VerifyingKey, u64), ExceptionError> {
    authority_key(
        policy,
        exception.approver.id,
        "the exception's approver is not in the policy",
    )
}

/// An authority's qualified name, public key and longest token lifetime (exception
/// approvers and workflow orchestrators alike); `missing` explains an absent authority.
pub(crate) fn authority_key(
    policy: &CheckedPolicy,
    id: egress_check::AuthorityId,
    missing: &str,
) -> Result<(String, VerifyingKey, u64), ExceptionError> {
    let authority = policy.authority(id).ok_or_else(|| refused(missing))?;
    let key = VerifyingKey::from_bytes(&authority.key).map_err(|_| {
        refused(format!(
            "authority `{}` has an invalid key",
            authority.name.local
        ))
    })?;
    Ok((
        authority.name.qualified.clone(),
        key,
        authority.max_ttl_secs,
    ))
}

/// Checks that `target` lies within the exception's `to` pattern.
fn check_target(
    policy: &CheckedPolicy,
    exception: &Exception,
    target: &Target,
) -> Result<(), ExceptionError> {
    let dest = policy
        .destination(exception.to.id)
        .ok_or_else(|| refused("the exception's `to` destination is missing"))?;
    if !dest.ports.iter().any(|p| p.contains(target.port)) {
        return Err(refused(format!(
            "{target} is outside exception `{}`: port {} not in its pattern",
            exception.name.local, target.port
        )));
    }
    if let Some(p) = target.protocol {
        if !dest.protocols.contains(&p) {
            return Err(refused(format!(
                "{target} is outside exception `{}`: protocol {p} not in its pattern",
                exception.name.local
            )));
        }
    }
    let inside = match target.host.parse::<IpAddr>() {
        Ok(ip) => dest.endpoints.iter().any(|e| match &e.kind {
            EndpointKind::Cidr(cidr) => cidr.contains(ip),
            _ => false,
        }),
        Err(_) => dest.endpoints.iter().any(|e| match &e.kind {
            EndpointKind::Host(pattern) => pattern.matches(&target.host),
            _ => false,
        }),
    };
    if !inside {
        return Err(refused(format!(
            "{target} is outside the pattern of exception `{}`",
            exception.name.local
        )));
    }
    Ok(())
}

/// Issues a token. Checks everything `apply` will check, so a useless token is never
/// handed out. Returns the token text and its claims.
pub fn grant(
    policy: &CheckedPolicy,
    request: &GrantRequest<'_>,
) -> Result<(String, Claims), ExceptionError> {
    let exception = find_exception(policy, request.exception)?;
    let (approver, key, authority_ttl) = approver_key(policy, exception)?;
    if request.key.verifying_key() != key {
        return Err(refused(format!(
            "the key is not the key of `{approver}`, the approver of exception `{}`",
            exception.name.local
        )));
    }
    let max_ttl = exception.max_ttl_secs.min(authority_ttl);
    if request.ttl_secs == 0 || request.ttl_secs > max_ttl {
        return Err(refused(format!(
            "ttl {}s exceeds the maximum of exception `{}` ({}s)",
            request.ttl_secs, exception.name.local, max_ttl
        )));
    }
    if let Some(target) = &request.to {
        check_target(policy, exception, target)?;
    }
    let all_agents = exception_agents(policy, exception);
    let agents = match request.agent {
        None => all_agents,
        Some(a) => {
            let agent = policy
                .agent_by_name(a)
                .ok_or_else(|| refused(format!("no agent `{a}` in the policy")))?;
            if !all_agents.contains(&agent.name.qualified) {
                return Err(refused(format!(
                    "agent `{a}` is not listed by exception `{}`",
                    exception.name.local
                )));
            }
            vec![agent.name.qualified.clone()]
        }
    };
    let id: [u8; 16] = random_bytes()?;
    let claims = Claims {
        v: 1,
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        exception: exception.name.qualified.clone(),
        agents,
        to: request.to.clone(),
        issued_at: request.now,
        expires_at: request.now + request.ttl_secs,
        max_uses: exception.max_uses,
        approver,
    };
    let payload = serde_json::to_vec(&claims)
        .map_err(|e| ExceptionError::Failed(format!("serialise claims: {e}")))?;
    let signature = request.key.sign(&payload);
    let token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    );
    Ok((token, claims))
}

/// Reads the claims without verifying them (for audit lines about refused tokens).
pub fn peek_claims(token: &str) -> Option<Claims> {
    let (payload, _) = token.trim().split_once('.')?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Splits a signed token (`base64url(claims).base64url(signature)`, exception and step
/// tokens alike) into its claims bytes and signature, without checking the signature.
pub(crate) fn decode_token(token: &str) -> Result<(Vec<u8>, [u8; 64]), ExceptionError> {
    let (payload_b64, signature_b64) = token
        .trim()
        .split_once('.')
        .ok_or_else(|| refused("malformed token (expected CLAIMS.SIGNATURE)"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| refused("malformed token (claims are not base64url)"))?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| refused("malformed token (signature is not 64 bytes of base64url)"))?;
    Ok((payload, signature))
}

/// Verifies a token against the policy at time `now`; returns its claims.
pub fn verify(policy: &CheckedPolicy, token: &str, now: u64) -> Result<Claims, ExceptionError> {
    let (payload, signature_bytes) = decode_token(token)?;
    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|_| refused("malformed token (claims are not valid JSON)"))?;
    let exception = find_exception(policy, &claims.exception)?;
    let (approver, key, authority_ttl) = approver_key(policy, exception)?;
    key.verify(&payload, &Signature::from_bytes(&signature_bytes))
        .map_err(|_| {
            refused(format!(
                "bad signature: the token is not signed by `{approver}`, the approver of exception `{}` (forged or tampered)",
                exception.name.local
            ))
        })?;
    if claims.v != 1 {
        return Err(refused(format!("unsupported token version {}", claims.v)));
    }
    let max_ttl = exception.max_ttl_secs.min(authority_ttl);
    if claims.expires_at <= claims.issued_at || claims.expires_at - claims.issued_at > max_ttl {
        return Err(refused(format!(
            "token lifetime {}s exceeds the maximum of exception `{}` ({}s)",
            claims.expires_at.saturating_sub(claims.issued_at),
            exception.name.local,
            max_ttl
        )));
    }
    if claims.issued_at > now + 60 {
        return Err(refused("token issued in the future (clock skew over 60s)"));
    }
    if now >= claims.expires_at {
        return Err(refused(format!(
            "token expired {}s ago",
            now - claims.expires_at
        )));
    }
    let listed = exception_agents(policy, exception);
    if claims.agents.is_empty() || !claims.agents.iter().all(|a| listed.contains(a)) {
        return Err(refused(format!(
            "token names agents not listed by exception `{}`",
            exception.name.local
        )));
    }
    if claims.max_uses != exception.max_uses {
        return Err(refused("token use limit differs from the exception's"));
    }
    if let Some(target) = &claims.to {
        check_target(policy, exception, target)?;
    }
    Ok(claims)
}

/// The rules a verified token opens. Host names are resolved now; every address must
/// still lie in the pattern (a host pattern admits the names it matches).
pub fn rules_for(
    policy: &CheckedPolicy,
    claims: &Claims,
) -> Result<Vec<ExceptionRule>, ExceptionError> {
    let exception = find_exception(policy, &claims.exception)?;
    let dest = policy
        .destination(exception.to.id)
        .ok_or_else(|| refused("the exception's `to` destination is missing"))?;
    let protocols: Vec<Protocol> = match claims.to.as_ref().and_then(|t| t.protocol) {
        Some(p) => vec![p],
        None => dest.protocols.clone(),
    };
    let mut rules = Vec::new();
    match &claims.to {
        Some(target) => {
            let addrs: Vec<IpAddr> = match target.host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => {
                    let mut found: Vec<IpAddr> = (target.host.as_str(), target.port)
                        .to_socket_addrs()
                        .map_err(|e| {
                            ExceptionError::Failed(format!("resolve {}: {e}", target.host))
                        })?
                        .map(|a| a.ip())
                        .collect();
                    found.sort();
                    found.dedup();
                    found
                }
            };
            for ip in addrs {
                for protocol in &protocols {
                    rules.push(ExceptionRule {
                        network: IpNet::from(ip).to_string(),
                        protocol: *protocol,
                        ports: target.port.to_string(),
                    });
                }
            }
        }
        None => {
            for endpoint in &dest.endpoints {
                match &endpoint.kind {
                    EndpointKind::Cidr(cidr) => {
                        for network in crate::rules::subtract(cidr.network, &cidr.except) {
                            for protocol in &protocols {
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
                    _ => {
                        return Err(refused(format!(
                            "exception `{}` names host or workload destinations; grant a token with `--to IP:PORT` (or HOST:PORT)",
                            exception.name.local
                        )))
                    }
                }
            }
        }
    }
    if rules.is_empty() {
        return Err(refused("the token opens no address"));
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------
// Ledger of uses (replay protection)

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Connections opened through the token so far (recorded at each expiry/revocation).
    pub used: u64,
    /// The attachment it is installed in right now.
    pub active_in: Option<String>,
    pub applications: u32,
    /// Uses reserved by the installation in progress: counted as spent until that
    /// installation records how many it really opened, so a token whose applying process
    /// died (and whose count is lost) never gets its uses back.
    #[serde(default)]
    pub reserved: u64,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    pub dir: PathBuf,
}

impl Ledger {
    pub fn default_dir() -> PathBuf {
        PathBuf::from("/var/lib/egc/exceptions")
    }
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
    /// The token's entry: empty when the token was never applied; an error when the
    /// entry exists but cannot be read, so a damaged ledger never resets a use count.
    pub fn get(&self, id: &str) -> Result<LedgerEntry, ExceptionError> {
        match fs::read_to_string(self.path(id)) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                ExceptionError::Failed(format!(
                    "ledger entry {} is unreadable ({e}); refusing rather than resetting its use count",
                    self.path(id).display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LedgerEntry::default()),
            Err(e) => Err(ExceptionError::Failed(format!(
                "ledger entry {}: {e}; refusing rather than resetting its use count",
                self.path(id).display()
            ))),
        }
    }
    fn create_dir(&self) -> Result<(), ExceptionError> {
        let fail = |e: std::io::Error| {
            ExceptionError::Failed(format!("ledger {}: {e}", self.dir.display()))
        };
        fs::create_dir_all(&self.dir).map_err(fail)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(fail)
    }
    pub fn put(&self, id: &str, entry: &LedgerEntry) -> Result<(), ExceptionError> {
        let fail = |e: std::io::Error| {
            ExceptionError::Failed(format!("ledger {}: {e}", self.dir.display()))
        };
        self.create_dir()?;
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let text = serde_json::to_string(entry).unwrap_or_default();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        fs::rename(&tmp, self.path(id)).map_err(fail)
    }
    /// Serialises ledger updates across processes.
    fn lock(&self) -> Result<fs::File, ExceptionError> {
        let fail = |e: std::io::Error| {
            ExceptionError::Failed(format!("ledger {}: {e}", self.dir.display()))
        };
        self.create_dir()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".lock"))
            .map_err(fail)?;
        crate::sys::flock_exclusive(&file).map_err(fail)?;
        Ok(file)
    }
}

// ---------------------------------------------------------------------------------------
// Apply, expire

/// Where `apply` records things.
#[derive(Clone, Debug)]
pub struct ApplyConfig {
    pub audit: AuditLog,
    pub ledger: Ledger,
    /// Install into this attachment (required when the agent has several).
    pub attachment: Option<String>,
}

/// A token installed in one attachment.
#[derive(Clone, Debug)]
pub struct Installed {
    pub claims: Claims,
    pub attachment: String,
    pub slot: u16,
    pub rules: Vec<ExceptionRule>,
    /// Host names opened in the attachment's DNS gateway.
    pub names: Vec<NameException>,
}

fn refuse_and_audit(
    config: &ApplyConfig,
    claims: Option<&Claims>,
    error: ExceptionError,
) -> ExceptionError {
    let reason = error.to_string();
    let _ = config
        .audit
        .append(&record("refuse", claims, json!({ "reason": reason })));
    error
}

/// Verifies the token and installs its rules. Every outcome is audited.
pub fn apply(
    policy: &CheckedPolicy,
    token: &str,
    config: &ApplyConfig,
) -> Result<Installed, ExceptionError> {
    let now = state::now_unix();
    let peeked = peek_claims(token);
    let claims = match verify(policy, token, now) {
        Ok(c) => c,
        Err(e) => return Err(refuse_and_audit(config, peeked.as_ref(), e)),
    };
    match install(policy, &claims, config, now) {
        Ok(installed) => {
            config.audit.append(&record(
                "use",
                Some(&claims),
                json!({
                    "attachment": installed.attachment,
                    "rules": installed.rules.iter().map(|r| format!("{} {} {}", r.network, r.protocol, r.ports)).collect::<Vec<_>>(),
                    "names": installed.names.iter().map(|n| format!("{} {} {}", n.pattern, n.protocol, n.ports)).collect::<Vec<_>>(),
                    "legal_basis": find_exception(policy, &claims.exception).map(|e| e.legal_basis.clone()).unwrap_or_default(),
                    "audit_sink": find_exception(policy, &claims.exception).ok().and_then(|e| policy.destination(e.audit.id)).map(|d| d.name.qualified.clone()),
                }),
            ))?;
            Ok(installed)
        }
        Err(e @ ExceptionError::Refused(_)) => Err(refuse_and_audit(config, Some(&claims), e)),
        Err(e) => Err(refuse_and_audit(config, Some(&claims), e)),
    }
}

fn install(
    policy: &CheckedPolicy,
    claims: &Claims,
    config: &ApplyConfig,
    now: u64,
) -> Result<Installed, ExceptionError> {
    let attachment = choose_attachment(claims, config)?;
    // An attachment whose DNS gateway serves names opens a host name there, for the
    // token's lifetime, instead of resolving it once now.
    let serves_names = loader::open(&attachment)
        .and_then(|a| a.config())
        .is_ok_and(|c| c.flags & loader::FLAG_NAMES != 0);
    if serves_names {
        if let Some(names) = names_for(policy, claims)? {
            return install_into(claims, Vec::new(), names, &attachment, config, now);
        }
    }
    let rules = rules_for(policy, claims)?;
    install_into(claims, rules, Vec::new(), &attachment, config, now)
}

/// The host names a verified token opens, when its target is a name (`--to HOST:PORT`)
/// or, without a target, when its destination is made of host patterns only; `None`
/// when it names addresses.
pub fn names_for(
    policy: &CheckedPolicy,
    claims: &Claims,
) -> Result<Option<Vec<NameException>>, ExceptionError> {
    let exception = find_exception(policy, &claims.exception)?;
    let dest = policy
        .destination(exception.to.id)
        .ok_or_else(|| refused("the exception's `to` destination is missing"))?;
    let protocols: Vec<Protocol> = match claims.to.as_ref().and_then(|t| t.protocol) {
        Some(p) => vec![p],
        None => dest.protocols.clone(),
    };
    let ports_text = |p: &egress_check::PortRange| {
        if p.start == p.end {
            p.start.to_string()
        } else {
            format!("{}-{}", p.start, p.end)
        }
    };
    let mut names = Vec::new();
    match &claims.to {
        Some(target) => {
            if target.host.parse::<IpAddr>().is_ok() {
                return Ok(None);
            }
            for protocol in &protocols {
                names.push(NameException {
                    pattern: target.host.trim_end_matches('.').to_ascii_lowercase(),
                    destination: dest.name.qualified.clone(),
                    protocol: *protocol,
                    ports: target.port.to_string(),
                    sni_optional: dest.sni_optional,
                });
            }
        }
        None => {
            for endpoint in &dest.endpoints {
                let EndpointKind::Host(pattern) = &endpoint.kind else {
                    return Ok(None);
                };
                for protocol in &protocols {
                    for ports in &dest.ports {
                        names.push(NameException {
                            pattern: pattern.to_string(),
                            destination: dest.name.qualified.clone(),
                            protocol: *protocol,
                            ports: ports_text(ports),
                            sni_optional: dest.sni_optional,
                        });
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(refused("the token opens no name"));
    }
    Ok(Some(names))
}

/// The attachment a token goes into: `config.attachment`, or the only one that enforces
/// an agent the token names.
fn choose_attachment(claims: &Claims, config: &ApplyConfig) -> Result<String, ExceptionError> {
    let mut candidates: Vec<String> = claims
        .agents
        .iter()
        .flat_map(|a| crate::control::attachments_of(a))
        .collect();
    candidates.sort();
    candidates.dedup();
    let attachment = match &config.attachment {
        Some(name) => {
            if !candidates.contains(name) {
                return Err(refused(format!(
                    "attachment `{name}` does not enforce an agent this token names ({})",
                    claims.agents.join(", ")
                )));
            }
            name.clone()
        }
        None => match candidates.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(refused(format!(
                "no enforcement is attached for {} (run `egc enforce apply` or `egc run` first)",
                claims.agents.join(", ")
            )))
            }
            many => {
                return Err(refused(format!(
                    "several attachments enforce this agent ({}); choose one with --attachment",
                    many.join(", ")
                )))
            }
        },
    };
    Ok(attachment)
}

/// Installs `rules`, gated by a fresh exception slot that expires at
/// `claims.expires_at`, into the attachment of one of `claims.agents`; records the use
/// in the ledger (reserving the remaining uses). Shared by exception and step tokens.
pub(crate) fn install_rules(
    claims: &Claims,
    rules: Vec<ExceptionRule>,
    config: &ApplyConfig,
    now: u64,
) -> Result<Installed, ExceptionError> {
    let attachment = choose_attachment(claims, config)?;
    install_into(claims, rules, Vec::new(), &attachment, config, now)
}

fn install_into(
    claims: &Claims,
    rules: Vec<ExceptionRule>,
    names: Vec<NameException>,
    attachment: &str,
    config: &ApplyConfig,
    now: u64,
) -> Result<Installed, ExceptionError> {
    let attachment = attachment.to_string();
    let _ledger_lock = config.ledger.lock()?;
    let mut ledger = config.ledger.get(&claims.id)?;
    if let Some(active) = &ledger.active_in {
        if loader::list().contains(active) {
            return Err(refused(format!(
                "token replayed: it is already active in attachment `{active}`"
            )));
        }
    }
    // An earlier installation that never recorded its count (its process died): its
    // reserved uses stay spent.
    ledger.used = ledger.used.saturating_add(ledger.reserved);
    ledger.reserved = 0;
    let remaining = match claims.max_uses {
        Some(max) => {
            let left = u64::from(max).saturating_sub(ledger.used);
            if left == 0 {
                return Err(refused(format!(
                    "token replayed beyond its use limit ({max} connection(s) already used)"
                )));
            }
            left
        }
        None => 0,
    };

    let _state_lock =
        state::lock(&attachment).map_err(|e| ExceptionError::Failed(e.to_string()))?;
    let mut st = state::load(&attachment).map_err(|e| ExceptionError::Failed(e.to_string()))?;
    let mut handle =
        loader::open(&attachment).map_err(|e| ExceptionError::Failed(e.to_string()))?;
    prune_expired(&mut st, &mut handle, config, now)?;
    let slot = st
        .free_slot()
        .ok_or_else(|| ExceptionError::Failed("no free exception slot".into()))?;
    let wall_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let left_ns = (claims.expires_at.saturating_mul(1_000_000_000)).saturating_sub(wall_ns);
    handle
        .set_exception_slot(
            u32::from(slot),
            ExceptionSlot {
                expires_boot_ns: crate::sys::boottime_ns().saturating_add(left_ns),
                max_uses: remaining,
                used: 0,
            },
        )
        .map_err(|e| ExceptionError::Failed(e.to_string()))?;
    st.exceptions.push(ActiveException {
        token_id: claims.id.clone(),
        exception: claims.exception.clone(),
        slot,
        rules: rules.clone(),
        names: names.clone(),
        expires_unix: claims.expires_at,
        max_uses: claims.max_uses,
        pid: std::process::id(),
    });
    let trie = st
        .desired_trie()
        .map_err(|e| ExceptionError::Failed(e.to_string()))?;
    handle
        .sync_rules(&trie)
        .map_err(|e| ExceptionError::Failed(e.to_string()))?;
    state::save(&st).map_err(|e| ExceptionError::Failed(e.to_string()))?;
    ledger.active_in = Some(attachment.clone());
    ledger.applications += 1;
    ledger.reserved = remaining;
    config.ledger.put(&claims.id, &ledger)?;
    Ok(Installed {
        claims: claims.clone(),
        attachment,
        slot,
        rules,
        names,
    })
}

/// Drops exceptions whose lifetime ended while no `apply` process was watching them
/// (it was killed): the program already refuses them; this frees their slots and entries
/// and records the expiry.
fn prune_expired(
    st: &mut state::AttachmentState,
    handle: &mut loader::Attachment,
    config: &ApplyConfig,
    now: u64,
) -> Result<(), ExceptionError> {
    let fail = |e: loader::EnforceError| ExceptionError::Failed(e.to_string());
    let (expired, live): (Vec<ActiveException>, Vec<ActiveException>) =
        st.exceptions.drain(..).partition(|e| e.expires_unix <= now);
    st.exceptions = live;
    if expired.is_empty() {
        return Ok(());
    }
    for e in &expired {
        let used = handle
            .exception_slot(u32::from(e.slot))
            .map(|s| s.used)
            .unwrap_or(0);
        handle
            .set_exception_slot(u32::from(e.slot), ExceptionSlot::default())
            .map_err(fail)?;
        handle.forget_exception_sockets(e.slot).map_err(fail)?;
        config.audit.append(&record(
            "expire",
            None,
            json!({
                "token_id": e.token_id,
                "exception": e.exception,
                "attachment": st.name,
                "connections": used,
                "note": "expired while no apply process was running",
            }),
        ))?;
    }
    let trie = st.desired_trie().map_err(fail)?;
    handle.sync_rules(&trie).map_err(fail)?;
    state::save(st).map_err(fail)
}

/// Removes an installed token's rules and records the connections it opened.
/// `event` is `expire` or `revoke`. `held`: a handle opened while the token was installed;
/// its maps stay readable after the attachment's pins are gone (an `egc run` that ended),
/// so the count is exact even then.
pub fn remove(
    installed: &Installed,
    config: &ApplyConfig,
    event: &str,
) -> Result<u64, ExceptionError> {
    remove_with(installed, config, event, None)
}

fn remove_with(
    installed: &Installed,
    config: &ApplyConfig,
    event: &str,
    held: Option<&mut loader::Attachment>,
) -> Result<u64, ExceptionError> {
    let fail = |e: loader::EnforceError| ExceptionError::Failed(e.to_string());
    let count = |slot: ExceptionSlot| match installed.claims.max_uses {
        Some(_) => slot.used.min(slot.max_uses),
        None => slot.used,
    };
    let mut used: Option<u64> = None;
    {
        let _state_lock = state::lock(&installed.attachment).map_err(fail)?;
        if let (Ok(mut st), Ok(mut handle)) = (
            state::load(&installed.attachment),
            loader::open(&installed.attachment),
        ) {
            // End the exception first: from here on the program refuses new connections
            // through the slot and the egress gate drops packets of those it opened.
            if let Ok(slot) = handle.exception_slot(u32::from(installed.slot)) {
                used = Some(count(slot));
            }
            handle
                .set_exception_slot(u32::from(installed.slot), ExceptionSlot::default())
                .map_err(fail)?;
            st.exceptions.retain(|e| e.slot != installed.slot);
            let trie = st.desired_trie().map_err(fail)?;
            handle.sync_rules(&trie).map_err(fail)?;
            handle
                .forget_exception_sockets(installed.slot)
                .map_err(fail)?;
            state::save(&st).map_err(fail)?;
        }
    }
    if used.is_none() {
        if let Some(handle) = held {
            if let Ok(slot) = handle.exception_slot(u32::from(installed.slot)) {
                used = Some(count(slot));
            }
        }
    }
    {
        let _ledger_lock = config.ledger.lock()?;
        let mut ledger = config.ledger.get(&installed.claims.id)?;
        match used {
            // The count is known: the reservation is replaced by it.
            Some(n) => ledger.used = ledger.used.saturating_add(n),
            // Unknown: every reserved use counts as spent (fail closed).
            None => ledger.used = ledger.used.saturating_add(ledger.reserved),
        }
        ledger.reserved = 0;
        ledger.active_in = None;
        config.ledger.put(&installed.claims.id, &ledger)?;
    }
    let used_text = used.map_or(Value::Null, |n| json!(n));
    config.audit.append(&record(
        event,
        Some(&installed.claims),
        json!({ "attachment": installed.attachment, "connections": used_text }),
    ))?;
    Ok(used.unwrap_or(0))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so `apply` can
/// revoke its entries and write the audit line.
pub fn stop_on_signals() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
    &STOP
}

/// Waits until the token expires (or `stop` is set), then removes its rules.
/// Returns the number of connections opened through it.
pub fn wait_and_expire(
    installed: &Installed,
    config: &ApplyConfig,
    stop: &AtomicBool,
) -> Result<u64, ExceptionError> {
    // Held for the whole wait: when the attachment goes away, its maps stay readable
    // through this handle, so the connections the token opened are still counted.
    let mut held = loader::open(&installed.attachment).ok();
    loop {
        if state::now_unix() >= installed.claims.expires_at {
            return remove_with(installed, config, "expire", held.as_mut());
        }
        if stop.load(Ordering::SeqCst) {
            return remove_with(installed, config, "revoke", held.as_mut());
        }
        if !loader::list().contains(&installed.attachment) {
            // The attachment went away (detached, or `egc run` ended).
            return remove_with(installed, config, "expire", held.as_mut());
        }
        if !still_installed(installed) {
            // Ended by another process (`egc enforce step end`), which recorded it.
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the attachment's state still holds this installation.
fn still_installed(installed: &Installed) -> bool {
    match state::load(&installed.attachment) {
        Ok(st) => st
            .exceptions
            .iter()
            .any(|e| e.slot == installed.slot && e.token_id == installed.claims.id),
        // Unreadable right now (being rewritten): assume it is.
        Err(_) => true,
    }
}

/// Finds an installed token by id in any attachment (for ending it from another
/// process).
pub fn find_installed(token_id: &str, claims: &Claims) -> Option<Installed> {
    for st in state::list() {
        if let Some(active) = st.exceptions.iter().find(|e| e.token_id == token_id) {
            return Some(Installed {
                claims: claims.clone(),
                attachment: st.name.clone(),
                slot: active.slot,
                rules: active.rules.clone(),
                names: active.names.clone(),
            });
        }
    }
    None
}

/// Audits a grant.
pub fn audit_grant(
    audit: &AuditLog,
    claims: &Claims,
    policy: &CheckedPolicy,
) -> Result<(), ExceptionError> {
    let exception = find_exception(policy, &claims.exception)?;
    audit.append(&record(
        "grant",
        Some(claims),
        json!({ "legal_basis": exception.legal_basis }),
    ))
}

/// Audits a refused grant.
pub fn audit_refused_grant(
    audit: &AuditLog,
    exception: &str,
    reason: &str,
) -> Result<(), ExceptionError> {
    audit.append(&record(
        "refuse",
        None,
        json!({ "exception": exception, "reason": reason, "stage": "grant" }),
    ))
}

pub fn write_secret_key(path: &Path, text: &str) -> Result<(), ExceptionError> {
    let fail = |e: std::io::Error| ExceptionError::Failed(format!("{}: {e}", path.display()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_durations_parse() {
        assert_eq!(parse_target("127.0.0.9:443").unwrap().port, 443);
        assert_eq!(
            parse_target("[::1]:53/udp").unwrap().protocol,
            Some(Protocol::Udp)
        );
        assert_eq!(
            parse_target("Api.Example.COM.:8443").unwrap().host,
            "api.example.com"
        );
        assert!(parse_target("api.example.com").is_err());
        assert!(parse_target("127.0.0.1:0").is_err());
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2s"), Some(2));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("10"), Some(10));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5w"), None);
    }

    #[test]
    fn keys_round_trip() {
        let (secret, public) = keygen().unwrap();
        let key = parse_secret_key(&secret).unwrap();
        assert_eq!(public_key_text(&key.verifying_key()), public);
        assert!(parse_secret_key("ed25519-secret:AAAA").is_err());
    }
}
