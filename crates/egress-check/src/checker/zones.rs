//! Zones.

use super::*;

impl Builder<'_> {
    pub(super) fn agents_list(&mut self, file: usize, agents: &ast::AgentsAst) -> ZoneAgents {
        match agents {
            ast::AgentsAst::All(span) => ZoneAgents::All(*span),
            ast::AgentsAst::Names(names) => ZoneAgents::Listed(
                names
                    .iter()
                    .filter_map(|ident| {
                        self.resolve(file, ident, Kind::Agent).map(|i| Ref {
                            id: AgentId(i),
                            span: ident.span,
                        })
                    })
                    .collect(),
            ),
        }
    }

    pub(super) fn zone(&mut self, file: usize, d: &ast::ZoneDecl, span: Span, doc: Option<String>) {
        let mut owner = None;
        let mut agents: Option<ZoneAgents> = None;
        let mut approve = Vec::new();
        let mut approve_caps: Vec<CapApproval> = Vec::new();
        let mut approve_unix: Vec<UnixSocket> = Vec::new();
        let mut clearances = Vec::new();
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        for entry in &d.entries {
            match entry {
                ast::ZoneEntry::Owner { span, value } => {
                    if let Some(first) = seen.get("owner") {
                        let first = *first;
                        self.duplicate_entry(*span, first, "owner");
                        continue;
                    }
                    seen.insert("owner", *span);
                    owner = Some(value.value.clone());
                }
                ast::ZoneEntry::Agents { span, agents: a } => {
                    if let Some(first) = seen.get("agents") {
                        let first = *first;
                        self.duplicate_entry(*span, first, "agents");
                        continue;
                    }
                    seen.insert("agents", *span);
                    agents = Some(self.agents_list(file, a));
                }
                ast::ZoneEntry::Approve { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Destination) {
                            let dest = DestId(i);
                            self.allowlist_uses_now.entry(dest).or_insert(ident.span);
                            approve.push(Ref {
                                id: dest,
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::ZoneEntry::ApproveGrant { names, .. } => {
                    for ident in names {
                        if !ident.text.starts_with("CAP_") {
                            self.error(
                                Diagnostic::error(
                                    "E0034",
                                    ident.span,
                                    format!("`{}` is not a Linux capability", ident.text),
                                )
                                .with_label("expected a capability such as `CAP_NET_RAW`")
                                .with_help("a zone approves Linux capabilities one by one, by name, so a reviewer sees each; capability sets are not accepted here"),
                            );
                            continue;
                        }
                        if let Some(cap) = self.linux_cap(ident) {
                            approve_caps.push(CapApproval {
                                cap,
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::ZoneEntry::ApproveUnix { paths, .. } => {
                    for lit in paths {
                        match values::unix_socket_path(lit) {
                            Ok(path) => approve_unix.push(UnixSocket {
                                path,
                                span: lit.span,
                            }),
                            Err(diag) => self.error(diag),
                        }
                    }
                }
                ast::ZoneEntry::Clear { span, class, to } => {
                    let class = self.resolve(file, class, Kind::Data).map(|i| Ref {
                        id: DataClassId(i),
                        span: class.span,
                    });
                    let to: Vec<Ref<DestId>> = to
                        .iter()
                        .filter_map(|ident| {
                            self.resolve(file, ident, Kind::Destination).map(|i| Ref {
                                id: DestId(i),
                                span: ident.span,
                            })
                        })
                        .collect();
                    if let Some(class) = class {
                        clearances.push(Clearance {
                            class,
                            to,
                            span: *span,
                        });
                    }
                }
            }
        }
        let Some(agents) = agents else {
            self.missing_entry(
                d.name.span,
                &format!("zone `{}`", d.name.text),
                "agents",
                "say whose approvals these are: `agents invoice_bot, ledger` or `agents *`",
            );
            return;
        };
        let id = ZoneId(self.next_id(self.parts.len(Kind::Zone)));
        self.parts.zones.push(Zone {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            owner,
            agents,
            approve,
            approve_caps,
            approve_unix,
            clearances,
        });
    }
}
