//! Destinations: hosts, addresses, ports, workload selectors and destination expressions.

use super::*;

impl Builder<'_> {
    pub(super) fn destination(
        &mut self,
        name: Name,
        body: &ast::DestBody,
        span: Span,
        doc: Option<String>,
        inline: bool,
    ) -> DestId {
        let mut endpoints = Vec::new();
        let mut ports = Vec::new();
        let mut protocols = Vec::new();
        let mut saw_ports = false;
        let mut sni_optional: Option<Span> = None;
        for entry in &body.entries {
            match entry {
                ast::DestEntry::SniOptional { span } => match sni_optional {
                    Some(first) => self.duplicate_entry(*span, first, "sni optional"),
                    None => sni_optional = Some(*span),
                },
                ast::DestEntry::Hosts { hosts, .. } => {
                    for host in hosts {
                        match values::host_pattern(host) {
                            Ok(pattern) => endpoints.push(Endpoint {
                                kind: EndpointKind::Host(pattern),
                                span: host.span,
                            }),
                            Err(d) => self.error(d),
                        }
                    }
                }
                ast::DestEntry::Cidr {
                    span,
                    network,
                    except,
                } => {
                    let Ok(net) = values::cidr(network).map_err(|d| self.error(d)) else {
                        continue;
                    };
                    let mut excluded = Vec::new();
                    for lit in except {
                        let Ok(ex) = values::cidr(lit).map_err(|d| self.error(d)) else {
                            continue;
                        };
                        let same_family = matches!(
                            (net, ex),
                            (ipnet::IpNet::V4(_), ipnet::IpNet::V4(_))
                                | (ipnet::IpNet::V6(_), ipnet::IpNet::V6(_))
                        );
                        if !same_family {
                            self.error(
                                Diagnostic::error(
                                    "E0023",
                                    lit.span,
                                    format!("`{ex}` and `{net}` are of different IP families"),
                                )
                                .with_label("other family")
                                .with_secondary(network.span, "the network")
                                .with_help(
                                    "IPv4 and IPv6 never overlap: put IPv6 in its own `cidr` entry",
                                ),
                            );
                            continue;
                        }
                        if !net.contains(&ex) {
                            self.error(
                                Diagnostic::error(
                                    "E0024",
                                    lit.span,
                                    format!("the exclusion `{ex}` is not inside `{net}`"),
                                )
                                .with_label("excludes nothing of the network")
                                .with_secondary(network.span, "the network")
                                .with_help("remove the exclusion or fix its address"),
                            );
                            continue;
                        }
                        if ex == net {
                            self.error(
                                Diagnostic::error(
                                    "E0024",
                                    lit.span,
                                    format!("the exclusion `{ex}` removes the whole network"),
                                )
                                .with_label("nothing is left")
                                .with_help("remove the `cidr` entry instead"),
                            );
                            continue;
                        }
                        excluded.push(ex);
                    }
                    excluded.sort();
                    excluded.dedup();
                    endpoints.push(Endpoint {
                        kind: EndpointKind::Cidr(CidrSet {
                            network: net,
                            except: excluded,
                        }),
                        span: *span,
                    });
                }
                ast::DestEntry::Workload(w) => {
                    if let Some(selector) = self.selector(w) {
                        endpoints.push(Endpoint {
                            kind: EndpointKind::Workload(selector),
                            span: w.span,
                        });
                    }
                }
                ast::DestEntry::Ports { ports: lits, .. } => {
                    saw_ports = true;
                    for lit in lits {
                        match values::port(lit) {
                            Ok(range) => ports.push(range),
                            Err(d) => self.error(d),
                        }
                    }
                }
                ast::DestEntry::Protocols { names, .. } => {
                    for ident in names {
                        match ident.text.to_ascii_lowercase().as_str() {
                            "tcp" => protocols.push(Protocol::Tcp),
                            "udp" => protocols.push(Protocol::Udp),
                            other => {
                                let mut d = Diagnostic::error(
                                    "E0033",
                                    ident.span,
                                    format!("unknown protocol `{other}`"),
                                )
                                .with_label("not a protocol")
                                .with_help("the protocols are `tcp` and `udp`");
                                if let Some(best) =
                                    crate::suggest::closest(other, ["tcp", "udp"].into_iter())
                                {
                                    d = d.with_suggestion(
                                        ident.span,
                                        best.clone(),
                                        format!("replace with `{best}`"),
                                    );
                                }
                                self.error(d);
                            }
                        }
                    }
                }
            }
        }
        let has_endpoint_entries = body.entries.iter().any(|e| {
            matches!(
                e,
                ast::DestEntry::Hosts { .. }
                    | ast::DestEntry::Cidr { .. }
                    | ast::DestEntry::Workload(_)
            )
        });
        let name_span = name.span;
        let has_hosts = body
            .entries
            .iter()
            .any(|e| matches!(e, ast::DestEntry::Hosts { .. }));
        if let (Some(sni_span), true, false) = (sni_optional, has_endpoint_entries, has_hosts) {
            self.error(
                Diagnostic::warning(
                    "W0005",
                    sni_span,
                    "`sni optional` on a destination without host names",
                )
                .with_label("has no effect here")
                .with_help(
                    "`sni optional` relaxes the run-time name check of `host` destinations; \
                     connections to `cidr` and `workload` endpoints are allowed by address \
                     alone, so remove it",
                ),
            );
        }
        if !has_endpoint_entries {
            let what = if inline {
                "this destination".to_string()
            } else {
                format!("destination `{}`", name.local)
            };
            self.error(
                Diagnostic::error("E0017", if inline { body.span } else { name_span }, format!("{what} names no host, cidr or workload"))
                    .with_label("reaches nothing")
                    .with_help("say what it reaches: `host \"api.example.com\"`, `cidr 192.0.2.0/24` or `workload namespace \"ns\"`"),
            );
        }
        if !saw_ports {
            self.error(
                Diagnostic::error(
                    "E0029",
                    if inline { body.span } else { name_span },
                    "this destination names no ports",
                )
                .with_label("no `port` entry")
                .with_help(
                    "default deny covers ports too: add `port 443` (or the ports actually needed)",
                ),
            );
        }
        ports.sort();
        let ports = merge_ports(ports);
        protocols.sort();
        protocols.dedup();
        if protocols.is_empty() {
            protocols.push(Protocol::Tcp);
        }
        let id = DestId(self.next_id(self.parts.len(Kind::Destination)));
        self.parts.destinations.push(Destination {
            id,
            name,
            span,
            doc,
            inline,
            endpoints,
            ports,
            protocols,
            sni_optional: sni_optional.is_some(),
        });
        id
    }

    pub(super) fn selector(&mut self, w: &ast::WorkloadAst) -> Option<WorkloadSelector> {
        let mut ok = true;
        let namespace = match values::namespace(&w.namespace) {
            Ok(n) => n,
            Err(d) => {
                self.error(d);
                ok = false;
                String::new()
            }
        };
        let mut labels = Labels::new();
        // Where each key was first given (a selector has few labels).
        let mut first: Vec<(String, Span)> = Vec::new();
        for (key, value) in &w.labels {
            let (Ok(k), Ok(v)) = (values::label_key(key), values::label_value(value)) else {
                if let Err(d) = values::label_key(key) {
                    self.error(d);
                }
                if let Err(d) = values::label_value(value) {
                    self.error(d);
                }
                ok = false;
                continue;
            };
            if let Some((_, previous)) = first.iter().find(|(seen, _)| *seen == k) {
                let previous = *previous;
                self.error(
                    Diagnostic::error(
                        "E0016",
                        key.span,
                        format!("the label `{k}` is given twice in this selector"),
                    )
                    .with_label("repeated label")
                    .with_secondary(previous, "first given here")
                    .with_help("a selector gives each label key once"),
                );
                ok = false;
                continue;
            }
            first.push((k.clone(), key.span));
            labels.insert(k, v);
        }
        ok.then_some(WorkloadSelector { namespace, labels })
    }

    pub(super) fn dest_expr(
        &mut self,
        file: usize,
        expr: &DestExpr,
        owner: &str,
    ) -> Option<(DestId, Span)> {
        match expr {
            DestExpr::Named(ident) => self
                .resolve(file, ident, Kind::Destination)
                .map(|i| (DestId(i), ident.span)),
            DestExpr::Inline(body) => {
                let local = format!("{owner}.inline{}", self.parts.len(Kind::Destination));
                let name = Name {
                    qualified: self.qualified(file, &local),
                    local,
                    span: body.span,
                };
                Some((
                    self.destination(name, body, body.span, None, true),
                    body.span,
                ))
            }
        }
    }
}

/// Sorts and merges overlapping or adjacent port ranges.
pub(super) fn merge_ports(sorted: Vec<PortRange>) -> Vec<PortRange> {
    let mut out: Vec<PortRange> = Vec::new();
    for range in sorted {
        match out.last_mut() {
            Some(last) if u32::from(range.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(range.end);
            }
            _ => out.push(range),
        }
    }
    out
}
