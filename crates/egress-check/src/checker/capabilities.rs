//! Capabilities, syscall groups and Linux capability sets.

use super::*;

impl Builder<'_> {
    pub(super) fn syscall_group(
        &mut self,
        file: usize,
        d: &ast::NameSetDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut syscalls = Vec::new();
        for member in &d.members {
            if crate::syscalls::SYSCALLS
                .binary_search(&member.text.as_str())
                .is_ok()
            {
                syscalls.push(member.text.clone());
            } else {
                let mut diag = Diagnostic::error(
                    "E0041",
                    member.span,
                    format!("`{}` is not a Linux syscall", member.text),
                )
                .with_label("unknown syscall")
                .with_help(
                    "use the kernel's syscall names as in `asm/unistd.h` (x86_64 and aarch64)",
                );
                if let Some(best) =
                    crate::suggest::closest(&member.text, crate::syscalls::SYSCALLS.iter().copied())
                {
                    diag = diag.with_suggestion(
                        member.span,
                        best.clone(),
                        format!("did you mean `{best}`?"),
                    );
                }
                self.error(diag);
            }
        }
        syscalls.sort();
        syscalls.dedup();
        let id = SyscallGroupId(u32::try_from(self.parts.syscall_groups.len()).unwrap_or(u32::MAX));
        self.parts.syscall_groups.push(SyscallGroup {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            syscalls,
        });
    }

    pub(super) fn linux_cap(&mut self, ident: &Ident) -> Option<LinuxCap> {
        let cap = LinuxCap::from_name(&ident.text);
        if cap.is_none() {
            let mut diag = Diagnostic::error(
                "E0034",
                ident.span,
                format!("`{}` is not a Linux capability", ident.text),
            )
            .with_label("unknown capability")
            .with_help(
                "Linux capabilities are named as in capabilities(7), e.g. `CAP_NET_BIND_SERVICE`",
            );
            if let Some(best) = crate::suggest::closest(&ident.text, LINUX_CAPS.iter().copied()) {
                diag = diag.with_suggestion(
                    ident.span,
                    best.clone(),
                    format!("did you mean `{best}`?"),
                );
            }
            self.error(diag);
        }
        cap
    }

    pub(super) fn cap_set(
        &mut self,
        file: usize,
        d: &ast::NameSetDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut caps = Vec::new();
        for member in &d.members {
            if let Some(cap) = self.linux_cap(member) {
                caps.push(cap);
            }
        }
        caps.sort();
        caps.dedup();
        let id = CapSetId(u32::try_from(self.parts.cap_sets.len()).unwrap_or(u32::MAX));
        self.parts.cap_sets.push(CapSet {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            caps,
        });
    }

    pub(super) fn capability(
        &mut self,
        file: usize,
        d: &ast::CapabilityDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut connects = Vec::new();
        let mut syscall_groups = Vec::new();
        let mut linux_caps = Vec::new();
        let mut workflows = Vec::new();
        let mut unix_sockets: Vec<UnixSocket> = Vec::new();
        let mut justified_by_sbom: Option<Span> = None;
        for entry in &d.entries {
            if entry.kind == ast::CapEntryKind::JustifiedBySbom {
                // Saying it twice says nothing more; the first is kept.
                justified_by_sbom.get_or_insert(entry.span);
            }
            for lit in &entry.paths {
                match values::unix_socket_path(lit) {
                    Ok(path) => {
                        if !unix_sockets.iter().any(|u| u.path == path) {
                            unix_sockets.push(UnixSocket {
                                path,
                                span: lit.span,
                            });
                        }
                    }
                    Err(diag) => self.error(diag),
                }
            }
            for ident in &entry.names {
                match entry.kind {
                    ast::CapEntryKind::Connect => {
                        if let Some(i) = self.resolve(file, ident, Kind::Destination) {
                            let dest = DestId(i);
                            self.allowlist_uses_now.entry(dest).or_insert(ident.span);
                            connects.push(Connect {
                                dest,
                                span: ident.span,
                            });
                        }
                    }
                    ast::CapEntryKind::Syscalls => {
                        if let Some(i) = self.resolve(file, ident, Kind::Syscalls) {
                            syscall_groups.push(SyscallGroupId(i));
                        }
                    }
                    ast::CapEntryKind::Grant => {
                        if ident.text.starts_with("CAP_") && !ident.text.contains('.') {
                            if let Some(cap) = self.linux_cap(ident) {
                                linux_caps.push(CapGrant {
                                    cap,
                                    span: ident.span,
                                    via: None,
                                });
                            }
                        } else if let Some(i) = self.resolve(file, ident, Kind::CapSet) {
                            let set = CapSetId(i);
                            let caps = self
                                .cap_sets
                                .get(set.index())
                                .map(|s| s.caps.clone())
                                .unwrap_or_default();
                            for cap in caps {
                                linux_caps.push(CapGrant {
                                    cap,
                                    span: ident.span,
                                    via: Some(set),
                                });
                            }
                        }
                    }
                    // A `unix` entry has paths, never names.
                    ast::CapEntryKind::Unix | ast::CapEntryKind::JustifiedBySbom => {}
                    ast::CapEntryKind::Workflows => {
                        // Workflows are built later; resolve the name now, the id is stable.
                        if let Some(i) = self.resolve(file, ident, Kind::Workflow) {
                            workflows.push(Ref {
                                id: WorkflowId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
            }
        }
        let id = CapId(self.next_id(self.parts.len(Kind::Capability)));
        self.parts.capabilities.push(Capability {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            connects,
            syscall_groups,
            linux_caps,
            workflows,
            unix_sockets,
            justified_by_sbom,
        });
    }
}
