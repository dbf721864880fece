//! Helpers shared by the fuzz targets: structured policies built from fuzzer bytes with
//! `arbitrary`, in the same shape as the differential test's proptest strategy
//! (`crates/egress-verify/tests/differential.rs`), rendered by the verifier's own
//! generator (`egress_verify::generate`), so the whole pipeline sees real policy text.

use arbitrary::{Result, Unstructured};
use egress_verify::generate::{
    AgentSpec, CapExtras, DestSpec, EndpointSpec, ExceptionSpec, Passing, PolicySpec, ZoneSpec,
    LOCAL_SOCKETS,
};

/// Host patterns: exact names, `*` and `**` at several depths, over shared labels so that
/// patterns overlap in every way.
pub const HOSTS: &[&str] = &[
    "a.svc.example",
    "b.svc.example",
    "a.b.svc.example",
    "*.svc.example",
    "**.svc.example",
    "*.a.svc.example",
    "**.a.svc.example",
    "a.*.svc.example",
    "*.*.svc.example",
    "**.*.svc.example",
    "b.a.svc.example",
];

/// Networks with exclusions, IPv4 and IPv6, nested and disjoint, and the metadata address.
pub const CIDRS: &[(&str, &[&str])] = &[
    ("10.0.0.0/9", &[]),
    ("10.128.0.0/9", &[]),
    ("10.1.0.0/16", &[]),
    ("10.1.0.0/16", &["10.1.2.0/24"]),
    ("10.1.0.0/16", &["10.1.0.0/17"]),
    ("10.1.2.0/24", &[]),
    ("10.1.2.3/32", &[]),
    ("192.0.2.0/24", &["192.0.2.128/25"]),
    ("169.254.169.254/32", &[]),
    ("169.254.0.0/16", &["169.254.169.254/32"]),
    ("2001:db8::/32", &[]),
    ("2001:db8:1::/48", &["2001:db8:1::/64"]),
    ("2001:db8::1/128", &[]),
    ("fe80::/64", &[]),
];

pub const PORTS: &[(u16, u16)] = &[
    (53, 53),
    (80, 80),
    (443, 443),
    (443, 444),
    (25, 25),
    (1, 1024),
    (8000, 8100),
];

fn pick<'a, T>(u: &mut Unstructured, items: &'a [T]) -> Result<&'a T> {
    u.choose(items)
}

fn index(u: &mut Unstructured, n: usize) -> Result<usize> {
    u.choose_index(n.max(1))
}

/// Between `min` and `max` values from `each`.
fn several<T>(
    u: &mut Unstructured,
    min: usize,
    max: usize,
    mut each: impl FnMut(&mut Unstructured) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(min..=max)?;
    (0..n).map(|_| each(u)).collect()
}

/// A sorted, deduplicated list of up to `max` indices below `n`.
fn indices(u: &mut Unstructured, max: usize, n: usize) -> Result<Vec<usize>> {
    let mut v = several(u, 0, max, |u| index(u, n))?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// A subsequence (order kept, no repeats) of `items` with between `min` and `max` elements.
fn subsequence<T: Clone>(
    u: &mut Unstructured,
    items: &[T],
    min: usize,
    max: usize,
) -> Result<Vec<T>> {
    let mut chosen: Vec<usize> = (0..items.len()).collect();
    let keep = u.int_in_range(min..=max.min(items.len()))?;
    while chosen.len() > keep {
        let drop = index(u, chosen.len())?;
        chosen.remove(drop);
    }
    Ok(chosen
        .into_iter()
        .filter_map(|i| items.get(i).cloned())
        .collect())
}

fn endpoint(u: &mut Unstructured) -> Result<EndpointSpec> {
    Ok(match u.int_in_range(0u8..=6)? {
        0..=2 => EndpointSpec::Host(pick(u, HOSTS)?.to_string()),
        3..=5 => {
            let (network, except) = pick(u, CIDRS)?;
            EndpointSpec::Cidr {
                network: network.to_string(),
                except: except.iter().map(|e| e.to_string()).collect(),
            }
        }
        _ => {
            let namespace = pick(u, &["x", "y"])?.to_string();
            let alt: bool = u.arbitrary()?;
            let labels = subsequence(u, &[("app", "p"), ("tier", "t")], 0, 2)?
                .into_iter()
                .map(|(k, v)| {
                    let v = if alt && k == "app" { "q" } else { v };
                    (k.to_string(), v.to_string())
                })
                .collect();
            EndpointSpec::Workload { namespace, labels }
        }
    })
}

fn destination(u: &mut Unstructured) -> Result<DestSpec> {
    let endpoints = several(u, 1, 2, endpoint)?;
    let ports = subsequence(u, PORTS, 1, 2)?;
    let protocol = u.int_in_range(0u8..=2)?;
    Ok(DestSpec {
        endpoints,
        ports,
        tcp: protocol != 1,
        udp: protocol != 0,
    })
}

/// A small policy: 2–5 destinations, 1–3 capabilities (some with `CAP_NET_RAW` or local
/// sockets) and agents, delegation with and without data, 1–2 zones (some approving raw
/// sockets or local sockets), an optional exception and optional assertions.
pub fn policy(u: &mut Unstructured) -> Result<PolicySpec> {
    let destinations = u.int_in_range(2usize..=5)?;
    let capabilities = u.int_in_range(1usize..=3)?;
    let agent_count = u.int_in_range(1usize..=3)?;
    let dests = (0..destinations)
        .map(|_| destination(u))
        .collect::<Result<Vec<_>>>()?;
    let caps = (0..capabilities)
        .map(|_| indices(u, 2, destinations))
        .collect::<Result<Vec<_>>>()?;
    let agents = (0..agent_count)
        .map(|_| {
            let uses = indices(u, 2, capabilities)?;
            let handles_pii = u.arbitrary()?;
            let invokes = several(u, 0, 1, |u| {
                let callee = index(u, agent_count)?;
                let passing = *pick(u, &[Passing::Everything, Passing::Pii, Passing::Other])?;
                Ok((callee, passing))
            })?;
            Ok(AgentSpec {
                uses,
                handles_pii,
                invokes,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cap_extras = (0..capabilities)
        .map(|_| {
            Ok(CapExtras {
                net_raw: u.ratio(1u8, 5)?,
                via_set: u.arbitrary()?,
                unix: indices(u, 1, LOCAL_SOCKETS.len())?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let zones = several(u, 1, 2, |u| {
        Ok(ZoneSpec {
            agents: indices(u, 2, agent_count)?,
            approve: indices(u, 3, destinations)?,
            clear_pii: indices(u, 3, destinations)?,
            approve_net_raw: u.ratio(3u8, 10)?,
            approve_unix: indices(u, 1, LOCAL_SOCKETS.len())?,
        })
    })?;
    let exceptions = several(u, 0, 1, |u| {
        Ok(ExceptionSpec {
            agents: vec![index(u, agent_count)?],
            to: index(u, destinations)?,
            audit: index(u, destinations)?,
        })
    })?;
    let cannot_reach = several(u, 0, 1, |u| {
        let agent = if u.arbitrary()? {
            Some(index(u, agent_count)?)
        } else {
            None
        };
        Ok((agent, index(u, destinations)?))
    })?;
    let can_reach = several(u, 0, 1, |u| {
        let agent = if u.arbitrary()? {
            Some(index(u, agent_count)?)
        } else {
            None
        };
        Ok((agent, index(u, destinations)?))
    })?;
    let step_invokes = several(u, 0, 2, |u| {
        let passing = *pick(u, &[Passing::Everything, Passing::Pii, Passing::Other])?;
        Ok((index(u, agent_count)?, index(u, agent_count)?, passing))
    })?;
    let never_reaches = several(u, 0, 1, |u| index(u, destinations))?;
    Ok(PolicySpec {
        can_reach,
        step_invokes,
        dests,
        caps,
        cap_extras,
        agents,
        zones,
        exceptions,
        cannot_reach,
        never_reaches,
    })
}

/// The syntax tree of an error-free file as JSON without spans, for comparing layouts
/// (as `tests/tests/suite/roundtrip.rs` does).
pub fn shape(parsed: &egress_syntax::Parsed) -> serde_json::Value {
    let mut value = serde_json::to_value(&parsed.ast).unwrap_or(serde_json::Value::Null);
    strip_spans(&mut value);
    value
}

fn is_span(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(|map| {
        map.len() == 3
            && map.contains_key("file")
            && map.contains_key("start")
            && map.contains_key("end")
    })
}

fn strip_spans(value: &mut serde_json::Value) {
    if is_span(value) {
        *value = serde_json::Value::Null;
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            map.remove("span");
            for v in map.values_mut() {
                strip_spans(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_spans),
        _ => {}
    }
}

/// Asserts what every diagnostic must satisfy: a registered code, and a span (and label
/// spans) inside its file and on character boundaries, so every renderer can show it.
pub fn check_diagnostics(result: &egress_check::CheckResult) {
    for d in &result.diagnostics {
        assert!(
            egress_syntax::diagnostic::code_title(d.code).is_some(),
            "unregistered code {}",
            d.code
        );
        let spans = std::iter::once(d.span).chain(d.labels.iter().map(|l| l.span));
        for span in spans {
            let file = result
                .file(span.file)
                .unwrap_or_else(|| panic!("{}: span in unknown file {:?}", d.code, span.file));
            let (start, end) = (span.start as usize, span.end as usize);
            assert!(
                start <= end && end <= file.text.len(),
                "{}: span {start}..{end} outside {} ({} bytes)",
                d.code,
                file.path,
                file.text.len()
            );
            assert!(
                file.text.is_char_boundary(start) && file.text.is_char_boundary(end),
                "{}: span {start}..{end} splits a character in {}",
                d.code,
                file.path
            );
        }
    }
    assert!(
        result
            .diagnostics
            .windows(2)
            .all(|pair| pair[0].sort_key() <= pair[1].sort_key()),
        "diagnostics are not sorted by (file, span, code, message)"
    );
    assert_eq!(
        result.has_errors(),
        result.policy.is_none(),
        "a policy must be built exactly when there is no error"
    );
}
