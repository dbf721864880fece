//! Exceptions and the authorities that approve them.

use super::*;

impl Builder<'_> {
    pub(super) fn authority(
        &mut self,
        file: usize,
        d: &ast::AuthorityDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut key: Option<([u8; 32], Span)> = None;
        let mut max_ttl: Option<(u64, Span)> = None;
        let mut key_seen: Option<Span> = None;
        let mut ttl_seen: Option<Span> = None;
        for entry in &d.entries {
            match entry {
                ast::AuthorityEntry::Key { span, value } => {
                    if let Some(first) = key_seen {
                        self.duplicate_entry(*span, first, "key");
                        continue;
                    }
                    key_seen = Some(*span);
                    match values::ed25519_key(value) {
                        Ok(k) => key = Some((k, *span)),
                        Err(diag) => self.error(diag),
                    }
                }
                ast::AuthorityEntry::MaxTtl { span, value } => {
                    if let Some(first) = ttl_seen {
                        self.duplicate_entry(*span, first, "max_ttl");
                        continue;
                    }
                    ttl_seen = Some(*span);
                    match values::duration(value) {
                        Ok(secs) => {
                            if secs > MAX_EXCEPTION_TTL_SECS {
                                self.error(ttl_over(
                                    value.span,
                                    secs,
                                    MAX_EXCEPTION_TTL_SECS,
                                    "the language's ceiling",
                                ));
                            }
                            max_ttl = Some((secs, *span));
                        }
                        Err(diag) => self.error(diag),
                    }
                }
            }
        }
        if key_seen.is_none() {
            self.missing_entry(
                d.name.span,
                "this authority",
                "key",
                "add `key \"ed25519:<base64 public key>\"`; `egc exception keygen` makes one",
            );
        }
        if ttl_seen.is_none() {
            self.missing_entry(
                d.name.span,
                "this authority",
                "max_ttl",
                "add the longest token lifetime it may sign, e.g. `max_ttl 1h`",
            );
        }
        let id = AuthorityId(u32::try_from(self.parts.authorities.len()).unwrap_or(u32::MAX));
        self.parts.authorities.push(Authority {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            key: key.map(|(k, _)| k).unwrap_or([0; 32]),
            max_ttl_secs: max_ttl.map(|(s, _)| s).unwrap_or(0),
        });
    }

    pub(super) fn exception(
        &mut self,
        file: usize,
        d: &ast::ExceptionDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut agents = None;
        let mut to = None;
        let mut approver: Option<Ref<AuthorityId>> = None;
        let mut max_ttl: Option<(u64, Span)> = None;
        let mut max_uses = None;
        let mut audit = None;
        let mut legal_basis = None;
        let owner = d.name.text.clone();
        for entry in &d.entries {
            let (what, entry_span) = match entry {
                ast::ExceptionEntry::Agents { span, .. } => ("agents", *span),
                ast::ExceptionEntry::To { span, .. } => ("to", *span),
                ast::ExceptionEntry::Approver { span, .. } => ("approver", *span),
                ast::ExceptionEntry::MaxTtl { span, .. } => ("max_ttl", *span),
                ast::ExceptionEntry::MaxUses { span, .. } => ("max_uses", *span),
                ast::ExceptionEntry::Audit { span, .. } => ("audit", *span),
                ast::ExceptionEntry::LegalBasis { span, .. } => ("legal_basis", *span),
            };
            if let Some(first) = seen.get(what) {
                let first = *first;
                self.duplicate_entry(entry_span, first, what);
                continue;
            }
            seen.insert(what, entry_span);
            match entry {
                ast::ExceptionEntry::Agents { agents: a, .. } => {
                    agents = Some(self.agents_list(file, a))
                }
                ast::ExceptionEntry::To { dest, .. } => {
                    to = self.dest_expr(file, dest, &owner);
                    if let Some((id, s)) = to {
                        self.allowlist_uses_now.entry(id).or_insert(s);
                    }
                }
                ast::ExceptionEntry::Approver { name, .. } => {
                    approver = self.resolve(file, name, Kind::Authority).map(|i| Ref {
                        id: AuthorityId(i),
                        span: name.span,
                    });
                }
                ast::ExceptionEntry::MaxTtl { value, .. } => match values::duration(value) {
                    Ok(secs) => max_ttl = Some((secs, value.span)),
                    Err(diag) => self.error(diag),
                },
                ast::ExceptionEntry::MaxUses { value, .. } => {
                    match value.value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0) {
                        Some(v) => max_uses = Some(v),
                        None => self.error(
                            Diagnostic::error("E0042", value.span, format!("`{}` is not a valid use count", value.text))
                                .with_label("must be from 1 to 4294967295")
                                .with_help("give how many connections one token may open, or drop `max_uses` for no limit within the lifetime"),
                        ),
                    }
                }
                ast::ExceptionEntry::Audit { dest, .. } => {
                    audit = self.dest_expr(file, dest, &owner);
                    if let Some((id, s)) = audit {
                        self.allowlist_uses_now.entry(id).or_insert(s);
                    }
                }
                ast::ExceptionEntry::LegalBasis { value, .. } => {
                    if value.value.trim().is_empty() {
                        self.error(
                            Diagnostic::error("E0039", value.span, "the legal basis is empty")
                                .with_label("empty text")
                                .with_help("cite the law or contract that mandates this call, e.g. \"GDPR Art. 17(1)\""),
                        );
                    } else {
                        legal_basis = Some(value.value.clone());
                    }
                }
            }
        }
        let name_span = d.name.span;
        if !seen.contains_key("audit") {
            self.error(
                Diagnostic::error(
                    "E0031",
                    name_span,
                    format!("exception `{owner}` has no audit sink"),
                )
                .with_label("unaudited exception")
                .with_help(
                    "every exception must say where its use is audited: add `audit DESTINATION`",
                ),
            );
        }
        for (what, help) in [
            ("agents", "say which agents may use it: `agents privacy_bot`"),
            ("to", "bound the run-time destination by a pattern: `to { host \"**.erasure.example\" port 443 }`"),
            ("approver", "name the authority whose key signs tokens: `approver dpo`"),
            ("max_ttl", "bound each token's lifetime: `max_ttl 15m`"),
            ("legal_basis", "cite the mandate as text: `legal_basis \"GDPR Art. 17\"`"),
        ] {
            if !seen.contains_key(what) {
                self.missing_entry(name_span, &format!("exception `{owner}`"), what, help);
            }
        }
        if let (Some((secs, ttl_span)), Some(approver)) = (max_ttl, approver) {
            if let Some(authority) = self.parts.authorities.get(approver.id.index()) {
                let (limit, authority_span) = (authority.max_ttl_secs, authority.name.span);
                if limit > 0 && secs > limit {
                    self.error(
                        ttl_over(ttl_span, secs, limit, "its approver's `max_ttl`")
                            .with_secondary(authority_span, "the approver's limit is set here"),
                    );
                }
            }
        }
        if let Some((secs, ttl_span)) = max_ttl {
            if secs > MAX_EXCEPTION_TTL_SECS {
                self.error(ttl_over(
                    ttl_span,
                    secs,
                    MAX_EXCEPTION_TTL_SECS,
                    "the language's ceiling",
                ));
            }
        }
        let (
            Some(agents),
            Some(to),
            Some(approver),
            Some((max_ttl_secs, max_ttl_span)),
            Some(audit),
            Some(legal_basis),
        ) = (agents, to, approver, max_ttl, audit, legal_basis)
        else {
            return;
        };
        let agents = match agents {
            ZoneAgents::All(_) => self
                .parts
                .each_agent_uses()
                .map(|(id, span, _)| Ref { id, span })
                .collect(),
            ZoneAgents::Listed(list) => list,
        };
        let id = ExceptionId(u32::try_from(self.parts.exceptions.len()).unwrap_or(u32::MAX));
        self.parts.exceptions.push(Exception {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            agents,
            to: Ref {
                id: to.0,
                span: to.1,
            },
            approver,
            max_ttl_secs,
            max_ttl_span,
            max_uses,
            audit: Ref {
                id: audit.0,
                span: audit.1,
            },
            legal_basis,
        });
    }
}

pub(super) fn ttl_over(span: Span, secs: u64, limit: u64, what: &str) -> Diagnostic {
    Diagnostic::error(
        "E0032",
        span,
        format!(
            "a token lifetime of {} is over {what} of {}",
            values::format_duration(secs),
            values::format_duration(limit)
        ),
    )
    .with_label("too long")
    .with_help(format!(
        "lower `max_ttl` to {} or less",
        values::format_duration(limit)
    ))
}
