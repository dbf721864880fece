//! Assertions.

use super::*;

impl Builder<'_> {
    pub(super) fn assertion(
        &mut self,
        file: usize,
        d: &ast::AssertDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut claims = Vec::new();
        let owner = d.name.text.clone();
        for claim in &d.claims {
            match claim {
                ast::ClaimAst::Agent {
                    span,
                    agent,
                    can,
                    dest,
                } => {
                    let who = match agent {
                        ast::AgentRef::All(s) => Some(AgentSel::All(*s)),
                        ast::AgentRef::Named(ident) => {
                            self.resolve(file, ident, Kind::Agent).map(|i| {
                                AgentSel::One(Ref {
                                    id: AgentId(i),
                                    span: ident.span,
                                })
                            })
                        }
                    };
                    let dest = self.dest_expr(file, dest, &owner);
                    if let (Some(agent), Some((id, dspan))) = (who, dest) {
                        let dest = Ref { id, span: dspan };
                        let kind = if *can {
                            ClaimKind::CanReach { agent, dest }
                        } else {
                            ClaimKind::CannotReach { agent, dest }
                        };
                        claims.push(Claim { span: *span, kind });
                    }
                }
                ast::ClaimAst::Data { span, class, dest } => {
                    let class = self.resolve(file, class, Kind::Data).map(|i| Ref {
                        id: DataClassId(i),
                        span: class.span,
                    });
                    let dest = self.dest_expr(file, dest, &owner);
                    if let (Some(class), Some((id, dspan))) = (class, dest) {
                        claims.push(Claim {
                            span: *span,
                            kind: ClaimKind::NeverReaches {
                                class,
                                dest: Ref { id, span: dspan },
                            },
                        });
                    }
                }
            }
        }
        let id = AssertId(u32::try_from(self.parts.asserts.len()).unwrap_or(u32::MAX));
        self.parts.asserts.push(Assertion {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            claims,
        });
    }
}
