//! Agents.

use super::*;

impl Builder<'_> {
    pub(super) fn agent(
        &mut self,
        file: usize,
        d: &ast::AgentDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut identity = Identity::default();
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut capabilities = Vec::new();
        let mut handles = Vec::new();
        let mut invokes = Vec::new();
        for entry in &d.entries {
            let single = match entry {
                ast::AgentEntry::Workload(w) => Some(("workload", w.span)),
                ast::AgentEntry::Image { span, .. } => Some(("image", *span)),
                ast::AgentEntry::Cgroup { span, .. } => Some(("cgroup", *span)),
                ast::AgentEntry::Uid { span, .. } => Some(("uid", *span)),
                _ => None,
            };
            if let Some((what, span)) = single {
                if let Some(first) = seen.get(what) {
                    let first = *first;
                    self.duplicate_entry(span, first, what);
                    continue;
                }
                seen.insert(what, span);
            }
            match entry {
                ast::AgentEntry::Workload(w) => identity.workload = self.selector(w),
                ast::AgentEntry::Image { value, .. } => match values::image_digest(value) {
                    Ok(v) => identity.image = Some(v),
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Executable { value, .. } => match values::executable_digest(value)
                {
                    Ok(v) => {
                        if !identity.executables.contains(&v) {
                            identity.executables.push(v);
                            identity.executables.sort();
                        }
                    }
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Cgroup { value, .. } => match values::cgroup_path(value) {
                    Ok(v) => identity.cgroup = Some(v),
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Uid { value, .. } => {
                    match value.value.and_then(|v| u32::try_from(v).ok()) {
                        Some(v) => identity.uid = Some(v),
                        None => self.error(
                            Diagnostic::error(
                                "E0042",
                                value.span,
                                format!("`{}` is not a valid uid", value.text),
                            )
                            .with_label("out of range")
                            .with_help("a uid is a number from 0 to 4294967295"),
                        ),
                    }
                }
                ast::AgentEntry::Uses { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Capability) {
                            capabilities.push(Ref {
                                id: CapId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::AgentEntry::Handles { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Data) {
                            handles.push(Ref {
                                id: DataClassId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::AgentEntry::Invokes {
                    callees, passing, ..
                } => {
                    let passing = passing.as_ref().map(|names| {
                        names
                            .iter()
                            .filter_map(|ident| {
                                self.resolve(file, ident, Kind::Data).map(|i| Ref {
                                    id: DataClassId(i),
                                    span: ident.span,
                                })
                            })
                            .collect::<Vec<_>>()
                    });
                    for ident in callees {
                        if let Some(i) = self.resolve(file, ident, Kind::Agent) {
                            invokes.push(Invocation {
                                callee: AgentId(i),
                                span: ident.span,
                                passing: passing.clone(),
                            });
                        }
                    }
                }
            }
        }
        let id = AgentId(self.next_id(self.parts.len(Kind::Agent)));
        self.parts.agents.push(Agent {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            identity,
            capabilities,
            handles,
            invokes,
        });
    }
}
