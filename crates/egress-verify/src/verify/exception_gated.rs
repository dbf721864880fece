//! `exception-gated`: exceptions are approved, time-bound, audited and within approvals.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_exception(&self, id: egress_check::ExceptionId) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(e) = self.policy.exception(id) else {
            return out;
        };
        let ename = e.name.local.clone();
        let exception_node = |span: Span, note: String| PathNode {
            kind: "exception",
            name: ename.clone(),
            span,
            note,
        };
        let authority = self.policy.authority(e.approver.id);
        let first_agent = e
            .agents
            .first()
            .map(|a| agent_name(self.policy, a.id))
            .unwrap_or_default();
        let simple = |span: Span, note: String, message: String, conditions: Vec<String>| {
            Finding::Violation(Violation {
                property: Property::ExceptionGated,
                agent: first_agent.clone(),
                path: vec![exception_node(span, note)],
                witness: None,
                conditions,
                message,
            })
        };
        match authority {
            None => out.push(simple(
                e.approver.span,
                "names an approver that does not exist".to_string(),
                format!("exception `{ename}` has no approving authority"),
                Vec::new(),
            )),
            Some(auth) => {
                if auth.key.iter().all(|b| *b == 0) {
                    out.push(simple(
                        e.approver.span,
                        format!(
                            "is approved by `{}`, whose key is all zeros",
                            auth.name.local
                        ),
                        format!(
                            "exception `{ename}`: authority `{}` has no usable key",
                            auth.name.local
                        ),
                        Vec::new(),
                    ));
                }
                if e.max_ttl_secs > auth.max_ttl_secs {
                    out.push(simple(
                        e.max_ttl_span,
                        format!("allows tokens of {}", format_duration(e.max_ttl_secs)),
                        format!(
                            "exception `{ename}` allows tokens of {}, longer than authority `{}` may sign ({})",
                            format_duration(e.max_ttl_secs),
                            auth.name.local,
                            format_duration(auth.max_ttl_secs)
                        ),
                        vec![format!("authority `{}` max_ttl {}", auth.name.local, format_duration(auth.max_ttl_secs))],
                    ));
                }
            }
        }
        if e.max_ttl_secs > MAX_EXCEPTION_TTL_SECS || e.max_ttl_secs == 0 {
            out.push(simple(
                e.max_ttl_span,
                format!("allows tokens of {}", format_duration(e.max_ttl_secs)),
                format!(
                    "exception `{ename}` token lifetime {} is outside 1s..24h",
                    format_duration(e.max_ttl_secs)
                ),
                Vec::new(),
            ));
        }
        for listed in &e.agents {
            let agent = listed.id;
            let aname = agent_name(self.policy, agent);
            let empty = Allowed::default();
            let approved = self.approved_set(agent).unwrap_or(&empty);
            let routes = eval::routes_indexed(self.policy, &self.index, agent);
            let own = Allowed::new(
                routes.iter().filter(|r| !r.is_exception()).map(|r| r.dest),
                &self.dest_boxes,
            );
            let Some(start) = agent_node(self.policy, agent) else {
                continue;
            };
            let mut base = vec![
                start,
                exception_node(listed.span, format!("is listed in exception `{ename}`")),
            ];
            // The exception's `to` must lie within the agent's approvals.
            if let Some(to) = dest_node(self.policy, e.to.id, e.to.span) {
                match self.outside(e.to.id, approved) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => out.push(Finding::Unknown {
                        property: Property::ExceptionGated,
                        reason,
                        span: e.to.span,
                    }),
                    Answer::Witness(w) => {
                        let mut path = base.clone();
                        path.push(to);
                        let confirmed = self
                            .policy
                            .destination(e.to.id)
                            .is_some_and(|d| eval::dest_contains(d, &w))
                            && !eval::approved_indexed(self.policy, &self.zone_index, agent, &w);
                        let message = format!(
                            "{}; the exception is broader than the approvals of `{aname}`; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::ExceptionGated,
                                agent: aname.clone(),
                                path,
                                witness: Some(w),
                                conditions: eval::exception_conditions(self.policy, id),
                                message,
                            },
                        ));
                    }
                }
            }
            // The audit sink must be reachable by the agent's own capabilities and approved.
            if let Some(last) = base.last_mut() {
                last.note = format!(
                    "is listed in exception `{ename}`, audited to `{}`",
                    dest_name(self.policy, e.audit.id)
                );
            }
            let audit_node = PathNode {
                kind: "destination",
                name: dest_name(self.policy, e.audit.id),
                span: e.audit.span,
                note: format!(
                    "whose audit sink is `{}`",
                    self.policy
                        .destination(e.audit.id)
                        .map(describe_destination)
                        .unwrap_or_default()
                ),
            };
            for (what, allowed, is_approval) in [
                ("approved for", approved, true),
                ("reachable by", &own, false),
            ] {
                match self.outside(e.audit.id, allowed) {
                    Answer::Holds => {}
                    Answer::Unknown(reason) => out.push(Finding::Unknown {
                        property: Property::ExceptionGated,
                        reason,
                        span: e.audit.span,
                    }),
                    Answer::Witness(w) => {
                        let mut path = base.clone();
                        path.push(audit_node.clone());
                        let in_audit = self
                            .policy
                            .destination(e.audit.id)
                            .is_some_and(|d| eval::dest_contains(d, &w));
                        let confirmed = in_audit
                            && if is_approval {
                                !eval::approved_indexed(self.policy, &self.zone_index, agent, &w)
                            } else {
                                !eval::allowed_routes_indexed(self.policy, &self.index, agent, &w)
                                    .iter()
                                    .any(|r| !r.is_exception())
                            };
                        let message = format!(
                            "{}; the audit sink is not {what} `{aname}`, so uses of the exception could go unaudited; witness `{w}`",
                            story(&path)
                        );
                        out.push(self.finding(
                            confirmed,
                            Violation {
                                property: Property::ExceptionGated,
                                agent: aname.clone(),
                                path,
                                witness: Some(w),
                                conditions: eval::exception_conditions(self.policy, id),
                                message,
                            },
                        ));
                    }
                }
            }
        }
        out
    }
}
