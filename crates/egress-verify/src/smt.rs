//! The SMT path: box questions encoded for Z3.
//!
//! A symbolic connection is a target kind, a 16-bit port, a protocol, a 32-bit IPv4 and a
//! 128-bit IPv6 bit-vector, a host name as a length plus one finite-domain label per
//! position from the right (each policy constant, or one "fresh" value standing for every
//! other label), and a workload as a namespace plus one finite-domain value per label key
//! (absent, each constant, or fresh). Host names are never Z3 strings: that theory is the
//! cost the notes measured.
//!
//! The question asked is always: is there a connection inside every `positive` box and
//! outside every `negative` box? Sat gives a witness, unsat a proof, and a timeout an
//! unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_check::{HostLabel, HostPattern, Protocol};
use z3::ast::{Ast, Bool, Int, BV};
use z3::{Config, Context, Params, SatResult, Solver};

use crate::sets::{fresh_label, ConnBox, Connection, IntervalSet, Point, Target, TargetSet};

/// The answer of one solver call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtAnswer {
    /// No connection satisfies the question.
    Unsat,
    /// A connection that does (decoded from the model; the caller replays it).
    Witness(Connection),
    /// The solver gave up (timeout or incompleteness), with its reason.
    Unknown(String),
}

const KIND_HOST: i64 = 0;
const KIND_V4: i64 = 1;
const KIND_V6: i64 = 2;
const KIND_WORKLOAD: i64 = 3;

struct Domains {
    /// Host label constants with their codes; `fresh_code` is one more than the last.
    labels: BTreeMap<String, i64>,
    fresh_label: String,
    fresh_code: i64,
    /// Positions a host needs: one more than the longest fixed suffix.
    positions: usize,
    namespaces: BTreeMap<String, i64>,
    fresh_namespace: String,
    /// Per label key: value codes (0..n), fresh value n, absent -1.
    keys: BTreeMap<String, (BTreeMap<String, i64>, String)>,
}

fn suffix_len(p: &HostPattern) -> (usize, bool) {
    let open = p.labels.iter().any(|l| matches!(l, HostLabel::OneOrMore));
    let fixed = p
        .labels
        .iter()
        .rev()
        .take_while(|l| !matches!(l, HostLabel::OneOrMore))
        .count();
    (fixed, open)
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Domains {
    fn new(boxes: &[&ConnBox]) -> Domains {
        let mut labels = BTreeSet::new();
        let mut positions = 1usize;
        let mut namespaces = BTreeSet::new();
        let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for b in boxes {
            match &b.target {
                TargetSet::Host(p) => {
                    for l in &p.labels {
                        if let HostLabel::Exact(s) = l {
                            labels.insert(s.clone());
                        }
                    }
                    positions = positions.max(suffix_len(p).0 + 1);
                }
                TargetSet::Workload(w) => {
                    namespaces.insert(w.namespace.clone());
                    for (k, v) in &w.labels {
                        keys.entry(k.clone()).or_default().insert(v.clone());
                    }
                }
                TargetSet::Ip(_) => {}
            }
        }
        let fresh = fresh_label(labels.iter().map(String::as_str));
        let fresh_namespace = fresh_label(namespaces.iter().map(String::as_str));
        Domains {
            fresh_code: to_i64(labels.len()),
            labels: labels
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, to_i64(i)))
                .collect(),
            fresh_label: fresh,
            positions,
            namespaces: namespaces
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, to_i64(i)))
                .collect(),
            fresh_namespace,
            keys: keys
                .into_iter()
                .map(|(k, vs)| {
                    let fresh = fresh_label(vs.iter().map(String::as_str));
                    (
                        k,
                        (
                            vs.into_iter()
                                .enumerate()
                                .map(|(i, s)| (s, to_i64(i)))
                                .collect(),
                            fresh,
                        ),
                    )
                })
                .collect(),
        }
    }
}

struct Vars<'ctx> {
    kind: Int<'ctx>,
    port: BV<'ctx>,
    tcp: Bool<'ctx>,
    v4: BV<'ctx>,
    v6: BV<'ctx>,
    len: Int<'ctx>,
    labels: Vec<Int<'ctx>>,
    namespace: Int<'ctx>,
    keys: BTreeMap<String, Int<'ctx>>,
}

fn bv128<'ctx>(ctx: &'ctx Context, v: u128) -> BV<'ctx> {
    let hi = u64::try_from(v >> 64).unwrap_or(u64::MAX);
    let lo = u64::try_from(v & u128::from(u64::MAX)).unwrap_or(u64::MAX);
    BV::from_u64(ctx, hi, 64).concat(&BV::from_u64(ctx, lo, 64))
}

trait ToBv {
    fn to_bv<'ctx>(self, ctx: &'ctx Context, bits: u32) -> BV<'ctx>;
}
impl ToBv for u16 {
    fn to_bv<'ctx>(self, ctx: &'ctx Context, bits: u32) -> BV<'ctx> {
        BV::from_u64(ctx, u64::from(self), bits)
    }
}
impl ToBv for u32 {
    fn to_bv<'ctx>(self, ctx: &'ctx Context, bits: u32) -> BV<'ctx> {
        BV::from_u64(ctx, u64::from(self), bits)
    }
}
impl ToBv for u128 {
    fn to_bv<'ctx>(self, ctx: &'ctx Context, _bits: u32) -> BV<'ctx> {
        bv128(ctx, self)
    }
}

fn in_intervals<'ctx, T: Point + ToBv>(
    ctx: &'ctx Context,
    var: &BV<'ctx>,
    set: &IntervalSet<T>,
    bits: u32,
) -> Bool<'ctx> {
    let parts: Vec<Bool<'ctx>> = set
        .intervals()
        .iter()
        .map(|&(a, b)| {
            Bool::and(
                ctx,
                &[
                    &var.bvuge(&a.to_bv(ctx, bits)),
                    &var.bvule(&b.to_bv(ctx, bits)),
                ],
            )
        })
        .collect();
    let refs: Vec<&Bool<'ctx>> = parts.iter().collect();
    Bool::or(ctx, &refs)
}

fn encode_box<'ctx>(ctx: &'ctx Context, v: &Vars<'ctx>, d: &Domains, b: &ConnBox) -> Bool<'ctx> {
    let ports = in_intervals(ctx, &v.port, &b.ports, 16);
    let protos: Vec<Bool<'ctx>> = b
        .protocols
        .iter()
        .map(|p| match p {
            Protocol::Tcp => v.tcp.clone(),
            Protocol::Udp => v.tcp.not(),
        })
        .collect();
    let proto_refs: Vec<&Bool<'ctx>> = protos.iter().collect();
    let proto = Bool::or(ctx, &proto_refs);
    let target = match &b.target {
        TargetSet::Ip(ips) => {
            let v4 = Bool::and(
                ctx,
                &[
                    &v.kind._eq(&Int::from_i64(ctx, KIND_V4)),
                    &in_intervals(ctx, &v.v4, &ips.v4, 32),
                ],
            );
            let v6 = Bool::and(
                ctx,
                &[
                    &v.kind._eq(&Int::from_i64(ctx, KIND_V6)),
                    &in_intervals(ctx, &v.v6, &ips.v6, 128),
                ],
            );
            Bool::or(ctx, &[&v4, &v6])
        }
        TargetSet::Host(p) => {
            let (fixed, open) = suffix_len(p);
            let fixed_i = Int::from_i64(ctx, to_i64(fixed));
            let mut parts = vec![v.kind._eq(&Int::from_i64(ctx, KIND_HOST))];
            parts.push(if open {
                v.len.gt(&fixed_i)
            } else {
                v.len._eq(&fixed_i)
            });
            for (pos, label) in p.labels.iter().rev().take(fixed).enumerate() {
                if let (HostLabel::Exact(s), Some(var)) = (label, v.labels.get(pos)) {
                    let code = d.labels.get(s).copied().unwrap_or(d.fresh_code);
                    parts.push(var._eq(&Int::from_i64(ctx, code)));
                }
            }
            let refs: Vec<&Bool<'ctx>> = parts.iter().collect();
            Bool::and(ctx, &refs)
        }
        TargetSet::Workload(w) => {
            let ns = d.namespaces.get(&w.namespace).copied().unwrap_or(-2);
            let mut parts = vec![
                v.kind._eq(&Int::from_i64(ctx, KIND_WORKLOAD)),
                v.namespace._eq(&Int::from_i64(ctx, ns)),
            ];
            for (k, val) in &w.labels {
                let code = d
                    .keys
                    .get(k)
                    .and_then(|(vals, _)| vals.get(val))
                    .copied()
                    .unwrap_or(-2);
                if let Some(var) = v.keys.get(k) {
                    parts.push(var._eq(&Int::from_i64(ctx, code)));
                }
            }
            let refs: Vec<&Bool<'ctx>> = parts.iter().collect();
            Bool::and(ctx, &refs)
        }
    };
    Bool::and(ctx, &[&target, &ports, &proto])
}

/// Is there a connection in every box of `positive` and in no box of `negative`?
pub fn solve(positive: &[&ConnBox], negative: &[&ConnBox], timeout_ms: u64) -> SmtAnswer {
    solve_mode(positive, false, negative, timeout_ms)
}

/// Is there a connection in some box of `any_of` and in no box of `none_of`? One solver
/// call for a whole candidate set against a whole boundary.
pub fn solve_any(any_of: &[&ConnBox], none_of: &[&ConnBox], timeout_ms: u64) -> SmtAnswer {
    if any_of.is_empty() {
        return SmtAnswer::Unsat;
    }
    solve_mode(any_of, true, none_of, timeout_ms)
}

fn solve_mode(
    positive: &[&ConnBox],
    disjunctive: bool,
    negative: &[&ConnBox],
    timeout_ms: u64,
) -> SmtAnswer {
    let all: Vec<&ConnBox> = positive.iter().chain(negative.iter()).copied().collect();
    let d = Domains::new(&all);
    let mut cfg = Config::new();
    cfg.set_model_generation(true);
    let ctx = Context::new(&cfg);
    let solver = Solver::new(&ctx);
    let mut params = Params::new(&ctx);
    params.set_u32(
        "timeout",
        u32::try_from(timeout_ms.max(1)).unwrap_or(u32::MAX),
    );
    solver.set_params(&params);

    let vars = Vars {
        kind: Int::new_const(&ctx, "kind"),
        port: BV::new_const(&ctx, "port", 16),
        tcp: Bool::new_const(&ctx, "tcp"),
        v4: BV::new_const(&ctx, "v4", 32),
        v6: BV::new_const(&ctx, "v6", 128),
        len: Int::new_const(&ctx, "len"),
        labels: (0..d.positions)
            .map(|i| Int::new_const(&ctx, format!("label{i}")))
            .collect(),
        namespace: Int::new_const(&ctx, "namespace"),
        keys: d
            .keys
            .keys()
            .map(|k| (k.clone(), Int::new_const(&ctx, format!("key:{k}"))))
            .collect(),
    };
    // Domains.
    let zero = Int::from_i64(&ctx, 0);
    solver.assert(&vars.kind.ge(&zero));
    solver.assert(&vars.kind.le(&Int::from_i64(&ctx, KIND_WORKLOAD)));
    solver.assert(&vars.port.bvuge(&BV::from_u64(&ctx, 1, 16)));
    // Hosts longer than `positions` labels behave like hosts of exactly that length.
    solver.assert(&vars.len.ge(&Int::from_i64(&ctx, 1)));
    solver.assert(&vars.len.le(&Int::from_i64(&ctx, to_i64(d.positions))));
    for l in &vars.labels {
        solver.assert(&l.ge(&zero));
        solver.assert(&l.le(&Int::from_i64(&ctx, d.fresh_code)));
    }
    solver.assert(&vars.namespace.ge(&zero));
    solver.assert(
        &vars
            .namespace
            .le(&Int::from_i64(&ctx, to_i64(d.namespaces.len()))),
    );
    for (k, var) in &vars.keys {
        let n = d.keys.get(k).map(|(vals, _)| vals.len()).unwrap_or(0);
        solver.assert(&var.ge(&Int::from_i64(&ctx, -1)));
        solver.assert(&var.le(&Int::from_i64(&ctx, to_i64(n))));
    }
    if disjunctive {
        let parts: Vec<Bool<'_>> = positive
            .iter()
            .map(|b| encode_box(&ctx, &vars, &d, b))
            .collect();
        let refs: Vec<&Bool<'_>> = parts.iter().collect();
        solver.assert(&Bool::or(&ctx, &refs));
    } else {
        for b in positive {
            solver.assert(&encode_box(&ctx, &vars, &d, b));
        }
    }
    for b in negative {
        solver.assert(&encode_box(&ctx, &vars, &d, b).not());
    }
    match solver.check() {
        SatResult::Unsat => SmtAnswer::Unsat,
        SatResult::Unknown => SmtAnswer::Unknown(
            solver
                .get_reason_unknown()
                .unwrap_or_else(|| "the solver gave up".to_string()),
        ),
        SatResult::Sat => match solver.get_model() {
            Some(model) => decode(&model, &vars, &d),
            None => SmtAnswer::Unknown("no model".to_string()),
        },
    }
}

fn eval_i64(model: &z3::Model<'_>, v: &Int<'_>) -> Option<i64> {
    model.eval(v, true).and_then(|x| x.as_i64())
}

fn eval_u64(model: &z3::Model<'_>, v: &BV<'_>) -> Option<u64> {
    model.eval(v, true).and_then(|x| x.as_u64())
}

fn decode(model: &z3::Model<'_>, v: &Vars<'_>, d: &Domains) -> SmtAnswer {
    let fail = || SmtAnswer::Unknown("could not decode the model".to_string());
    let Some(kind) = eval_i64(model, &v.kind) else {
        return fail();
    };
    let Some(port) = eval_u64(model, &v.port).and_then(|p| u16::try_from(p).ok()) else {
        return fail();
    };
    let tcp = model
        .eval(&v.tcp, true)
        .and_then(|b| b.as_bool())
        .unwrap_or(true);
    let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
    let target = match kind {
        KIND_V4 => match eval_u64(model, &v.v4).and_then(|a| u32::try_from(a).ok()) {
            Some(a) => Target::Ip(IpAddr::V4(Ipv4Addr::from(a))),
            None => return fail(),
        },
        KIND_V6 => {
            let hi = eval_u64(model, &v.v6.extract(127, 64));
            let lo = eval_u64(model, &v.v6.extract(63, 0));
            match (hi, lo) {
                (Some(hi), Some(lo)) => Target::Ip(IpAddr::V6(Ipv6Addr::from(
                    (u128::from(hi) << 64) | u128::from(lo),
                ))),
                _ => return fail(),
            }
        }
        KIND_HOST => {
            let len = eval_i64(model, &v.len)
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(1)
                .clamp(1, d.positions);
            let by_code: BTreeMap<i64, &str> =
                d.labels.iter().map(|(s, c)| (*c, s.as_str())).collect();
            let mut labels: Vec<String> = Vec::with_capacity(len);
            for var in v.labels.iter().take(len) {
                let code = eval_i64(model, var).unwrap_or(d.fresh_code);
                labels.push(
                    by_code
                        .get(&code)
                        .copied()
                        .unwrap_or(&d.fresh_label)
                        .to_string(),
                );
            }
            labels.reverse();
            Target::Host(labels.join("."))
        }
        _ => {
            let ns_code = eval_i64(model, &v.namespace).unwrap_or(-1);
            let namespace = d
                .namespaces
                .iter()
                .find(|(_, c)| **c == ns_code)
                .map(|(s, _)| s.clone())
                .unwrap_or_else(|| d.fresh_namespace.clone());
            let mut labels = BTreeMap::new();
            for (k, var) in &v.keys {
                let code = eval_i64(model, var).unwrap_or(-1);
                if code < 0 {
                    continue;
                }
                if let Some((vals, fresh)) = d.keys.get(k) {
                    let value = vals
                        .iter()
                        .find(|(_, c)| **c == code)
                        .map(|(s, _)| s.clone())
                        .unwrap_or_else(|| fresh.clone());
                    labels.insert(k.clone(), value);
                }
            }
            Target::Workload { namespace, labels }
        }
    };
    SmtAnswer::Witness(Connection {
        target,
        port,
        protocol,
    })
}

/// The string encoding the performance notes measured, kept for comparison only: the
/// host as a Z3 string and each pattern as a regular expression (`*` one label, `**` one
/// or more labels). Is some host in a pattern of `any_of` and in none of `none_of`?
/// Returns the witness host. Never used by the verifier: it is slow.
pub fn solve_hosts_as_strings(
    any_of: &[&HostPattern],
    none_of: &[&HostPattern],
    timeout_ms: u64,
) -> Result<Option<String>, String> {
    use z3::ast::{Regexp, String as ZString};
    let cfg = Config::new();
    let ctx = Context::new(&cfg);
    let solver = Solver::new(&ctx);
    let mut params = Params::new(&ctx);
    params.set_u32(
        "timeout",
        u32::try_from(timeout_ms.max(1)).unwrap_or(u32::MAX),
    );
    solver.set_params(&params);
    let label = Regexp::union(
        &ctx,
        &[
            &Regexp::range(&ctx, &'a', &'z'),
            &Regexp::range(&ctx, &'0', &'9'),
            &Regexp::literal(&ctx, "-"),
        ],
    )
    .plus();
    let regex = |p: &HostPattern| {
        let mut parts: Vec<Regexp<'_>> = Vec::new();
        for (i, l) in p.labels.iter().enumerate() {
            if i > 0 {
                parts.push(Regexp::literal(&ctx, "."));
            }
            match l {
                HostLabel::Exact(s) => parts.push(Regexp::literal(&ctx, s)),
                HostLabel::One => parts.push(label.clone()),
                HostLabel::OneOrMore => parts.push(Regexp::concat(
                    &ctx,
                    &[
                        &label,
                        &Regexp::concat(&ctx, &[&Regexp::literal(&ctx, "."), &label]).star(),
                    ],
                )),
            }
        }
        let refs: Vec<&Regexp<'_>> = parts.iter().collect();
        Regexp::concat(&ctx, &refs)
    };
    let host = ZString::new_const(&ctx, "host");
    let any: Vec<Bool<'_>> = any_of
        .iter()
        .map(|p| host.regex_matches(&regex(p)))
        .collect();
    let any_refs: Vec<&Bool<'_>> = any.iter().collect();
    solver.assert(&Bool::or(&ctx, &any_refs));
    for p in none_of {
        solver.assert(&host.regex_matches(&regex(p)).not());
    }
    match solver.check() {
        SatResult::Unsat => Ok(None),
        SatResult::Unknown => Err(solver
            .get_reason_unknown()
            .unwrap_or_else(|| "unknown".to_string())),
        SatResult::Sat => Ok(solver
            .get_model()
            .and_then(|m| m.eval(&host, true))
            .and_then(|h| h.as_string())
            .or(Some(String::new()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sets::{parse_host_pattern, IpSet, PortSet, ProtoSet};

    fn hbox(p: &str, ports: (u16, u16)) -> ConnBox {
        ConnBox {
            target: TargetSet::Host(parse_host_pattern(p)),
            ports: PortSet::interval(ports.0, ports.1),
            protocols: ProtoSet::from_protocols(&[Protocol::Tcp]),
        }
    }

    #[test]
    fn host_difference() {
        let reach = hbox("**.a.example", (443, 443));
        let approved = hbox("*.a.example", (443, 443));
        match solve(&[&reach], &[&approved], 5000) {
            SmtAnswer::Witness(w) => assert!(reach.contains(&w) && !approved.contains(&w), "{w}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(solve(&[&approved], &[&reach], 5000), SmtAnswer::Unsat);
    }

    #[test]
    fn ipv6_and_ports() {
        let net: ipnet::IpNet = "2001:db8::/32".parse().unwrap();
        let small: ipnet::IpNet = "2001:db8::/33".parse().unwrap();
        let b = |n: &ipnet::IpNet, p: (u16, u16)| ConnBox {
            target: TargetSet::Ip(IpSet::from_net(n)),
            ports: PortSet::interval(p.0, p.1),
            protocols: ProtoSet::all(),
        };
        let reach = b(&net, (53, 53));
        let approved = b(&small, (1, 65535));
        match solve(&[&reach], &[&approved], 5000) {
            SmtAnswer::Witness(w) => assert!(reach.contains(&w) && !approved.contains(&w), "{w}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            solve(&[&b(&small, (53, 53))], &[&reach], 5000),
            SmtAnswer::Unsat
        );
    }
}
