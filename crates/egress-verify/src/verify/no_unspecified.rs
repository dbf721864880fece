//! `no-unspecified`: no route, exceptions included, reaches an unspecified or
//! this-network address (0.0.0.0/8, ::), which reaches the local host.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_no_unspecified(
        &self,
        name: &str,
        routes: &[Route],
        out: &mut Vec<Finding>,
    ) {
        // no-unspecified: no route at all, exceptions included, reaches 0.0.0.0/8 or ::.
        let dests: Vec<DestId> = routes.iter().map(|r| r.dest).collect();
        if self.smt_none_meet(&dests, &self.unspecified) {
            return;
        }
        for route in routes {
            match self.inside(route.dest, &self.unspecified) {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::NoUnspecified, reason, route))
                }
                Answer::Witness(w) => {
                    let confirmed = self.route_allows_in(routes, route, &w)
                        && matches!(&w.target, crate::sets::Target::Ip(ip) if egress_check::is_unspecified(*ip));
                    let message = format!(
                        "{}; `{}` is an unspecified or this-network address, which reaches the local host; witness `{w}`",
                        story(&route.path),
                        w.target
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::NoUnspecified,
                            agent: name.to_string(),
                            path: route.path.clone(),
                            witness: Some(w),
                            conditions: route.conditions.clone(),
                            message,
                        },
                    ));
                }
            }
        }
    }
}
