//! The hosts and ports an SBOM declares, each with the components that justify it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::{Component, Sbom};

/// Where a location was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocationKind {
    /// CycloneDX `externalReferences[type=distribution]`.
    Distribution,
    /// CycloneDX `externalReferences[type=vcs]`.
    Vcs,
    /// CycloneDX `services[].endpoints`.
    Endpoint,
    /// SPDX `downloadLocation`.
    DownloadLocation,
    /// SPDX `externalRefs` with a URL locator.
    ExternalRef,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Distribution => "distribution",
            LocationKind::Vcs => "vcs",
            LocationKind::Endpoint => "endpoint",
            LocationKind::DownloadLocation => "downloadLocation",
            LocationKind::ExternalRef => "externalRef",
        }
    }
}

/// A host a component is fetched from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceHost {
    /// A DNS name, in lower case, without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for SourceHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceHost::Name(n) => f.write_str(n),
            SourceHost::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            SourceHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// One declared source: a host and a TCP port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub host: SourceHost,
    pub port: u16,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A component's claim on a source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Justification {
    /// The component's purl, or `name@version`, or its name.
    pub component: String,
    pub version: Option<String>,
    pub kind: LocationKind,
    pub url: String,
}

/// Something `egc sbom import` could not turn into a destination.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    pub component: String,
    pub kind: FindingKind,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// The component declares no distribution, VCS or download location.
    NoLocation,
    /// A declared location that names no host and port egc can use.
    Unusable { url: String, reason: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FindingKind::NoLocation => write!(
                f,
                "component `{}` declares no download, distribution or VCS location; no destination is derived for it",
                self.component
            ),
            FindingKind::Unusable { url, reason } => write!(
                f,
                "component `{}`: location `{}` is not used: {reason}",
                self.component,
                url.escape_debug()
            ),
        }
    }
}

/// The declared sources of an SBOM (ordered), and the findings (sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    pub sources: BTreeMap<Source, BTreeSet<Justification>>,
    pub findings: Vec<Finding>,
}

/// The sources an SBOM declares. Only declared locations count; a component without one
/// is a finding, never a guess.
pub fn declared(sbom: &Sbom) -> Declared {
    let mut out = Declared::default();
    for component in &sbom.components {
        add_component(&mut out, component);
    }
    out.findings.sort();
    out.findings.dedup();
    out
}

fn add_component(out: &mut Declared, component: &Component) {
    let label = component.label();
    if component.locations.is_empty() {
        out.findings.push(Finding {
            component: label,
            kind: FindingKind::NoLocation,
        });
        return;
    }
    for location in &component.locations {
        match source_of(&location.url) {
            Ok(source) => {
                out.sources
                    .entry(source)
                    .or_default()
                    .insert(Justification {
                        component: label.clone(),
                        version: component.version.clone(),
                        kind: location.kind,
                        url: location.url.clone(),
                    });
            }
            Err(reason) => out.findings.push(Finding {
                component: label.clone(),
                kind: FindingKind::Unusable {
                    url: location.url.clone(),
                    reason,
                },
            }),
        }
    }
}

/// The default TCP port of a URL scheme (after any `git+`-style VCS prefix).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        "git" => Some(9418),
        "ssh" => Some(22),
        "ftp" => Some(21),
        _ => None,
    }
}

/// The host and port a location URL names: `https://h/…`, `git+https://h:8443/…`,
/// `ssh://git@h/…`, or the scp-like `git@h:org/repo.git` (SSH, port 22).
/// The host is what the URL says; nothing is inferred from a purl or a package name.
pub fn source_of(location: &str) -> Result<Source, String> {
    let location = location.trim();
    let Some((scheme, rest)) = location.split_once("://") else {
        return scp_like(location);
    };
    // `git+https`, `hg+http`, `svn+ssh`: a VCS over a transport; the transport counts.
    let transport = scheme
        .rsplit_once('+')
        .map_or(scheme, |(_, t)| t)
        .to_ascii_lowercase();
    let Some(default) = default_port(&transport) else {
        return Err(format!("the scheme `{scheme}` has no known port"));
    };
    let url =
        url::Url::parse(&format!("{transport}://{rest}")).map_err(|e| format!("not a URL: {e}"))?;
    let port = url.port().unwrap_or(default);
    if port == 0 {
        return Err("port 0 is not a destination".into());
    }
    let host = match url.host() {
        Some(url::Host::Ipv4(a)) => SourceHost::Ip(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => SourceHost::Ip(IpAddr::V6(a)),
        Some(url::Host::Domain(d)) => host_name(d)?,
        None => return Err("the URL names no host".into()),
    };
    Ok(Source { host, port })
}

/// `[user@]host:path`, the scp-like syntax git accepts for SSH.
fn scp_like(location: &str) -> Result<Source, String> {
    let Some((authority, path)) = location.split_once(':') else {
        return Err("not a URL (no `scheme://`)".into());
    };
    // Only `user@host:path`: without the user, `name:rest` is more often a URN or a
    // broken URL than a host.
    let Some((_, host)) = authority.rsplit_once('@') else {
        return Err("not a URL (no `scheme://`)".into());
    };
    if path.is_empty() || authority.contains('/') {
        return Err("not a URL (no `scheme://`)".into());
    }
    Ok(Source {
        host: host_name(host)?,
        port: 22,
    })
}

/// A DNS name as egc writes it: lower case, no trailing dot, letters, digits and `-` in
/// labels of 1 to 63 characters, at most 253 characters. An IP literal is an address.
fn host_name(text: &str) -> Result<SourceHost, String> {
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SourceHost::Ip(ip));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("`{}` is not a host name", text.escape_debug()));
    }
    Ok(SourceHost::Name(name))
}
