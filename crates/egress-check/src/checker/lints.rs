//! Whole-policy checks after every item is built: workflow limits, allowlists, unused
//! imports.

use super::*;

impl Checker<'_> {
    /// W0004: a capability limited to workflows, used by an agent that no step of those
    /// workflows lets use it.
    pub(super) fn check_workflow_limits(&mut self) {
        let mut warnings = Vec::new();
        for (agent, agent_span, capabilities) in self.parts.each_agent_uses() {
            for used in capabilities {
                let Some(cap) = self.parts.capability(used.id) else {
                    continue;
                };
                if cap.workflows.is_empty() {
                    continue;
                }
                let stepped = cap.workflows.iter().any(|w| {
                    self.parts.workflows.get(w.id.index()).is_some_and(|wf| {
                        wf.steps.iter().any(|s| {
                            s.agent == agent
                                && matches!(&s.action, StepAction::Uses(c) if c.id == cap.id)
                        })
                    })
                });
                if !stepped {
                    // The agent's name as written (a declared name is its text).
                    let agent_name = self
                        .files
                        .get(agent_span.file.0 as usize)
                        .and_then(|f| f.text.get(agent_span.range()))
                        .unwrap_or("");
                    warnings.push(
                        Diagnostic::warning(
                            "W0004",
                            used.span,
                            format!(
                                "agent `{}` can never use `{}`: no step of its workflows uses it",
                                agent_name, cap.name.local
                            ),
                        )
                        .with_label("unusable here")
                        .with_secondary(cap.name.span, "limited to workflows here")
                        .with_help(format!(
                            "add `step {} uses {}` to one of its workflows, or remove it from the agent",
                            agent_name, cap.name.local
                        )),
                    );
                }
            }
        }
        self.diagnostics.extend(warnings);
    }

    /// E0027/E0028/W0002/W0003 on destinations used as allowlists.
    pub(super) fn check_allowlists(&mut self) {
        let mut found = Vec::new();
        for (dest_id, use_span) in &self.allowlist_uses {
            if let Some(dest) = self.parts.destination(*dest_id) {
                allowlist_findings(dest, *use_span, &mut found);
            }
        }
        self.diagnostics.extend(found);
    }

    pub(super) fn check_unused_imports(&mut self) {
        let mut found = Vec::new();
        for file in &self.files {
            if file.is_stdlib {
                continue;
            }
            for (alias, info) in &file.imports {
                if !info.used.load(Ordering::Relaxed) && info.target.is_some() {
                    found.push(
                        Diagnostic::warning(
                            "W0001",
                            info.span,
                            format!("the import `{alias}` is never used"),
                        )
                        .with_label("unused")
                        .with_help("remove the import"),
                    );
                }
            }
        }
        self.diagnostics.extend(found);
    }
}

/// What makes a destination a bad allowlist, in the order reported: at most one per
/// endpoint, then its ports.
pub(super) enum Risk<'d> {
    /// E0026: a host pattern so broad it means almost anything.
    Pattern(&'d Endpoint, &'d HostPattern),
    /// E0028: every address except a few.
    Denylist(&'d Endpoint, &'d CidrSet),
    /// E0027: every address.
    Any(&'d Endpoint, &'d CidrSet),
    /// W0003: a very broad network.
    Broad(&'d Endpoint, &'d CidrSet),
    /// W0002: every port.
    AllPorts,
}

/// The risks of using `dest` as an allowlist (nothing formatted: a check without the
/// model asks this of every destination it drops).
pub(super) fn allowlist_risks(dest: &Destination) -> impl Iterator<Item = Risk<'_>> {
    let endpoints = dest
        .endpoints
        .iter()
        .filter_map(|endpoint| match &endpoint.kind {
            EndpointKind::Host(pattern) if values::is_too_broad(pattern) => {
                Some(Risk::Pattern(endpoint, pattern))
            }
            EndpointKind::Cidr(set) => {
                let prefix = set.network.prefix_len();
                if prefix == 0 && !set.except.is_empty() {
                    Some(Risk::Denylist(endpoint, set))
                } else if prefix == 0 {
                    Some(Risk::Any(endpoint, set))
                } else if (set.network.addr().is_ipv4() && prefix < 8)
                    || (set.network.addr().is_ipv6() && prefix < 16)
                {
                    Some(Risk::Broad(endpoint, set))
                } else {
                    None
                }
            }
            _ => None,
        });
    let ports = dest
        .ports
        .iter()
        .any(|p| p.start <= 1 && p.end == 65535)
        .then_some(Risk::AllPorts);
    endpoints.chain(ports)
}

/// What using `dest` as an allowlist at `use_span` reports (E0026, E0027, E0028, W0002,
/// W0003), pushed onto `found`.
pub(super) fn allowlist_findings(dest: &Destination, use_span: Span, found: &mut Vec<Diagnostic>) {
    for risk in allowlist_risks(dest) {
        let diagnostic = match risk {
            Risk::Pattern(endpoint, pattern) => Diagnostic::error(
                "E0026",
                endpoint.span,
                format!("the pattern `{pattern}` is so broad it means almost anything"),
            )
            .with_label("matches a whole top-level domain or every host")
            .with_help(
                "name the registered domain at least: \"*.api.example.com\" or \"**.corp.example\"",
            ),
            Risk::Denylist(endpoint, set) => Diagnostic::error(
                "E0028",
                endpoint.span,
                format!(
                    "`{}` with exclusions is a denylist, used here as an allowlist",
                    set.network
                ),
            )
            .with_label("everything except a few networks")
            .with_help(
                "list the networks the agent needs instead of excluding the ones it must not reach",
            ),
            Risk::Any(endpoint, set) => Diagnostic::error(
                "E0027",
                endpoint.span,
                format!("`{}` means any address", set.network),
            )
            .with_label("allows everything")
            .with_help("name the specific networks the agent needs"),
            Risk::Broad(endpoint, set) => Diagnostic::warning(
                "W0003",
                endpoint.span,
                format!("`{}` is a very broad network to allow", set.network),
            )
            .with_label("very broad")
            .with_help("narrow the network to what the agent needs"),
            Risk::AllPorts => Diagnostic::warning(
                "W0002",
                dest.name.span,
                format!("destination `{}` allows every port", dest.name.local),
            )
            .with_label("all ports")
            .with_help("name the ports the service listens on"),
        };
        found.push(diagnostic.with_secondary(use_span, "allowed here"));
    }
}
