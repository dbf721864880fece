//! Tokens: claims and targets, keys, granting (signing) and verification against the
//! policy.

use super::*;

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

/// What `grant` needs.
pub struct GrantRequest<'a> {
    pub exception: &'a str,
    pub key: &'a SigningKey,
    pub ttl_secs: u64,
    pub to: Option<Target>,
    pub agent: Option<&'a str>,
    pub now: u64,
}

pub(super) fn find_exception<'p>(
    policy: &'p CheckedPolicy,
    name: &str,
) -> Result<&'p Exception, ExceptionError> {
    policy
        .exception_by_name(name)
        .ok_or_else(|| refused(format!("no exception `{name}` in the policy")))
}

pub(super) fn exception_agents(policy: &CheckedPolicy, exception: &Exception) -> Vec<String> {
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

pub(super) fn approver_key(
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
pub(super) fn check_target(
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
