//! `no-metadata`: no route reaches a link-local or cloud metadata address, unless the
//! route is an exception whose `to` names that address.

use super::*;

impl Ctx<'_> {
    pub(super) fn check_no_metadata(&self, name: &str, routes: &[Route], out: &mut Vec<Finding>) {
        // no-metadata: no route reaches a metadata address, unless the route is an
        // exception whose `to` names that address.
        let direct: Vec<DestId> = routes
            .iter()
            .filter(|r| !r.is_exception())
            .map(|r| r.dest)
            .collect();
        let direct_clear = self.smt_none_meet(&direct, &self.metadata);
        for route in routes {
            if direct_clear && !route.is_exception() {
                continue;
            }
            let answer = if route.is_exception() {
                self.metadata_through_exception(route.dest)
            } else {
                self.inside(route.dest, &self.metadata)
            };
            match answer {
                Answer::Holds => {}
                Answer::Unknown(reason) => {
                    out.push(self.unknown(Property::NoMetadata, reason, route))
                }
                Answer::Witness(w) => {
                    let w = prefer_metadata_witness(self.policy, route, w);
                    // Replay against the whole property, the exemption included.
                    let confirmed = self.route_allows_in(routes, route, &w)
                        && eval::metadata_leak(self.policy, route, &w);
                    let unnamed = if route.is_exception() {
                        ", and no CIDR of the exception's `to` names it"
                    } else {
                        ""
                    };
                    let message = format!(
                        "{}; `{}` is a link-local or cloud metadata address{unnamed}; witness `{w}`",
                        story(&route.path),
                        w.target
                    );
                    out.push(self.finding(
                        confirmed,
                        Violation {
                            property: Property::NoMetadata,
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

impl Ctx<'_> {
    /// A metadata address of an exception's `to` that the `to` does not name: one in an
    /// endpoint's box, in the metadata ranges, and in no endpoint all of whose addresses
    /// are metadata addresses (those endpoints name the addresses they hold).
    pub(super) fn metadata_through_exception(&self, dest: DestId) -> Answer {
        let boxes = self
            .dest_boxes
            .get(dest.index())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut naming: Vec<&ConnBox> = Vec::new();
        let mut others: Vec<&ConnBox> = Vec::new();
        for b in boxes {
            if !matches!(b.target, TargetSet::Ip(_)) {
                continue;
            }
            match self.decider.difference(b, &[&self.metadata]) {
                Answer::Holds => naming.push(b),
                Answer::Witness(_) => others.push(b),
                Answer::Unknown(why) => return Answer::Unknown(why),
            }
        }
        let mut unknown = None;
        for b in others {
            match self.decider.difference_within(b, &self.metadata, &naming) {
                Answer::Holds => {}
                Answer::Witness(w) => return Answer::Witness(w),
                Answer::Unknown(why) => unknown = Some(why),
            }
        }
        unknown.map_or(Answer::Holds, Answer::Unknown)
    }
}

/// Prefers a well-known instance-metadata address as a witness when it breaks
/// `no-metadata` on the route too (it is in the route's destination and, on an exception
/// route, not named by the exception's `to`), so the witness stays a counterexample.
fn prefer_metadata_witness(policy: &CheckedPolicy, route: &Route, w: Connection) -> Connection {
    for candidate in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
        if let Ok(ip) = candidate.parse() {
            let c = Connection {
                target: crate::sets::Target::Ip(ip),
                ..w.clone()
            };
            if eval::metadata_leak(policy, route, &c) {
                return c;
            }
        }
    }
    w
}
