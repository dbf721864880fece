//! Workflows.

use super::*;

impl Builder<'_> {
    pub(super) fn workflow(
        &mut self,
        file: usize,
        d: &ast::WorkflowDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut steps = Vec::new();
        for step in &d.steps {
            let Some(agent) = self.resolve(file, &step.agent, Kind::Agent).map(AgentId) else {
                // Resolve the rest anyway, to report every unknown name.
                match &step.action {
                    ast::StepActionAst::Uses(c) => {
                        self.resolve(file, c, Kind::Capability);
                    }
                    ast::StepActionAst::Invokes { callee, .. } => {
                        self.resolve(file, callee, Kind::Agent);
                    }
                }
                continue;
            };
            let agent_name = step.agent.text.clone();
            match &step.action {
                ast::StepActionAst::Uses(ident) => {
                    let Some(cap) = self.resolve(file, ident, Kind::Capability).map(CapId) else {
                        continue;
                    };
                    let uses = self.parts.agent_uses(agent);
                    let has = uses.is_some_and(|(_, caps)| caps.iter().any(|c| c.id == cap));
                    if !has {
                        let agent_span = uses.map(|(span, _)| span);
                        let mut diag = Diagnostic::error(
                            "E0037",
                            ident.span,
                            format!(
                                "agent `{agent_name}` does not use capability `{}`",
                                ident.text
                            ),
                        )
                        .with_label("not one of the agent's capabilities")
                        .with_help(format!(
                            "add `uses {}` to agent `{agent_name}`, or use one of its capabilities",
                            ident.text
                        ));
                        if let Some(s) = agent_span {
                            diag = diag.with_secondary(s, "the agent is declared here");
                        }
                        self.error(diag);
                        continue;
                    }
                    steps.push(Step {
                        span: step.span,
                        agent,
                        action: StepAction::Uses(Ref {
                            id: cap,
                            span: ident.span,
                        }),
                    });
                }
                ast::StepActionAst::Invokes { callee, passing } => {
                    let Some(callee_id) = self.resolve(file, callee, Kind::Agent).map(AgentId)
                    else {
                        continue;
                    };
                    let passing: Vec<Ref<DataClassId>> = passing
                        .iter()
                        .flatten()
                        .filter_map(|ident| {
                            self.resolve(file, ident, Kind::Data).map(|i| Ref {
                                id: DataClassId(i),
                                span: ident.span,
                            })
                        })
                        .collect();
                    let may = self.parts.may_invoke(agent, callee_id);
                    if !may {
                        self.error(
                            Diagnostic::error(
                                "E0038",
                                callee.span,
                                format!("agent `{agent_name}` may not invoke `{}`", callee.text),
                            )
                            .with_label("no such delegation")
                            .with_help(format!("add `invokes {}` to agent `{agent_name}` if this delegation is intended", callee.text)),
                        );
                        continue;
                    }
                    steps.push(Step {
                        span: step.span,
                        agent,
                        action: StepAction::Invokes {
                            callee: Ref {
                                id: callee_id,
                                span: callee.span,
                            },
                            passing,
                        },
                    });
                }
            }
        }
        let id = WorkflowId(u32::try_from(self.parts.workflows.len()).unwrap_or(u32::MAX));
        let orchestrator = d.orchestrator.as_ref().and_then(|name| {
            self.resolve(file, name, Kind::Authority).map(|i| Ref {
                id: AuthorityId(i),
                span: name.span,
            })
        });
        self.parts.workflows.push(Workflow {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            orchestrator,
            ordered: d.ordered.is_some(),
            steps,
        });
    }
}
