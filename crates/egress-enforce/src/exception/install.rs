//! Installation: the rules a token's claims give, the use ledger, and applying a token to
//! an agent's attachment.

use super::*;

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
    pub(super) fn lock(&self) -> Result<fs::File, ExceptionError> {
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

pub(super) fn refuse_and_audit(
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

pub(super) fn install(
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
pub(super) fn choose_attachment(
    claims: &Claims,
    config: &ApplyConfig,
) -> Result<String, ExceptionError> {
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

pub(super) fn install_into(
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
