//! Validation of literal values: host names and patterns, CIDRs, ports, durations, keys,
//! selectors, digests. Each returns the value or a diagnostic with code, span and help.

use std::net::IpAddr;

use egress_syntax::ast::{CidrLit, DurationLit, NumLit, PortLit, StrLit};
use egress_syntax::{Diagnostic, Span};
use ipnet::IpNet;

use crate::model::{HostLabel, HostPattern, PortRange};

/// Parses and validates a host name or wildcard pattern.
pub fn host_pattern(lit: &StrLit) -> Result<HostPattern, Diagnostic> {
    let span = lit.span;
    let raw = lit.value.trim();
    let err = |message: String, help: &str| {
        Err(Diagnostic::error("E0025", span, message)
            .with_label("invalid host")
            .with_help(help.to_string()))
    };
    if raw.is_empty() {
        return err(
            "a host name cannot be empty".into(),
            "write a fully qualified name such as \"api.example.com\"",
        );
    }
    if raw.contains("://") || raw.contains('/') || raw.contains(':') {
        return err(
            format!("`{raw}` is not a host name"),
            "write only the host name, e.g. \"api.example.com\"; put ports in a `port` entry",
        );
    }
    if raw.parse::<IpAddr>().is_ok() {
        return err(
            format!("`{raw}` is an IP address, not a host name"),
            "write addresses as `cidr 192.0.2.10/32`",
        );
    }
    let lowered = raw.to_ascii_lowercase();
    let name = lowered.strip_suffix('.').unwrap_or(&lowered);
    if name.len() > 253 {
        return err(
            "a host name is at most 253 characters".into(),
            "shorten the name",
        );
    }
    let mut labels = Vec::new();
    for (index, label) in name.split('.').enumerate() {
        let parsed = match label {
            "*" => HostLabel::One,
            "**" => {
                if index != 0 {
                    return err(
                        format!("`**` may only be the leftmost label in `{raw}`"),
                        "`**` stands for one or more labels and must come first, as in \"**.example.com\"",
                    );
                }
                HostLabel::OneOrMore
            }
            "" => {
                return err(
                    format!("`{raw}` has an empty label"),
                    "remove the doubled or leading dot",
                )
            }
            other => {
                if other.contains('*') {
                    return err(
                        format!("`{other}` mixes `*` with other characters"),
                        "a wildcard stands for whole labels: use `*` (one label) or `**` (one or more)",
                    );
                }
                let valid = other.len() <= 63
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && !other.starts_with('-')
                    && !other.ends_with('-');
                if !valid {
                    return err(
                        format!("`{other}` is not a valid DNS label"),
                        "labels are 1 to 63 letters, digits, `-` or `_`, not starting or ending with `-`",
                    );
                }
                HostLabel::Exact(other.to_string())
            }
        };
        labels.push(parsed);
    }
    Ok(HostPattern { labels })
}

/// A host pattern from its text (as a maps file or a report writes it), validated as
/// [`host_pattern`] validates one written in a policy; `None` when it is not one.
pub fn host_pattern_of(text: &str) -> Option<HostPattern> {
    host_pattern(&StrLit {
        value: text.to_string(),
        span: Span::default(),
    })
    .ok()
}

/// A wildcard pattern with fewer than two exact labels spans a whole top-level domain or
/// every host: as an allowlist it means almost anything.
pub fn is_too_broad(pattern: &HostPattern) -> bool {
    !pattern.is_exact()
        && pattern
            .labels
            .iter()
            .filter(|l| matches!(l, HostLabel::Exact(_)))
            .count()
            < 2
}

/// Parses a CIDR (an address alone means a single host: /32 or /128).
pub fn cidr(lit: &CidrLit) -> Result<IpNet, Diagnostic> {
    let text = lit.text.as_str();
    let parsed = if text.contains('/') {
        text.parse::<IpNet>().ok()
    } else {
        text.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let Some(net) = parsed else {
        if let Some((address, prefix)) = text.split_once('/') {
            let max = if address.contains(':') { 128 } else { 32 };
            if prefix.parse::<u32>().is_ok_and(|p| p > max) {
                return Err(Diagnostic::error(
                    "E0024",
                    lit.span,
                    format!("the prefix length /{prefix} is over {max}"),
                )
                .with_label("prefix too long")
                .with_help(format!(
                    "an IPv{} prefix length is 0 to {max}",
                    if max == 32 { 4 } else { 6 }
                )));
            }
        }
        return Err(Diagnostic::error(
            "E0024",
            lit.span,
            format!("`{text}` is not a valid IPv4 or IPv6 CIDR"),
        )
        .with_label("invalid CIDR")
        .with_help("write an address and a prefix length, e.g. 192.0.2.0/24 or 2001:db8::/32"));
    };
    if net.trunc() != net {
        let fixed = net.trunc().to_string();
        return Err(
            Diagnostic::error("E0022", lit.span, format!("`{text}` has host bits set"))
                .with_label(format!("the network is {fixed}"))
                .with_help(format!(
                    "write the network address `{fixed}`, or a longer prefix if one host was meant"
                ))
                .with_suggestion(lit.span, fixed.clone(), format!("replace with `{fixed}`")),
        );
    }
    Ok(net)
}

pub fn port_number(lit: &NumLit) -> Result<u16, Diagnostic> {
    match lit.value {
        Some(v) if (1..=65535).contains(&v) => u16::try_from(v).map_err(|_| port_error(lit)),
        _ => Err(port_error(lit)),
    }
}

fn port_error(lit: &NumLit) -> Diagnostic {
    Diagnostic::error(
        "E0020",
        lit.span,
        format!("port `{}` is out of range", lit.text),
    )
    .with_label("not in 1..65535")
    .with_help("ports are numbers from 1 to 65535")
}

pub fn port(lit: &PortLit) -> Result<PortRange, Diagnostic> {
    let start = port_number(&lit.start)?;
    let end = match &lit.end {
        Some(end) => port_number(end)?,
        None => start,
    };
    if start > end {
        return Err(Diagnostic::error(
            "E0021",
            lit.span,
            format!("the port range `{start}-{end}` is empty"),
        )
        .with_label("start is after end")
        .with_help(format!("write the lower port first: `{end}-{start}`"))
        .with_suggestion(lit.span, format!("{end}-{start}"), "swap the bounds"));
    }
    Ok(PortRange { start, end })
}

/// Parses `15m`, `1h`, `30s`, `2d` into seconds.
pub fn duration(lit: &DurationLit) -> Result<u64, Diagnostic> {
    let text = lit.text.as_str();
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let multiplier = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    let value = digits
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(multiplier));
    match value {
        Some(v) if v > 0 => Ok(v),
        _ => Err(Diagnostic::error(
            "E0030",
            lit.span,
            format!("`{text}` is not a valid positive duration"),
        )
        .with_label("invalid duration")
        .with_help("write a positive number with a unit: `30s`, `15m`, `1h` or `1d`")),
    }
}

pub fn format_duration(secs: u64) -> String {
    if secs > 0 && secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Parses `ed25519:<base64 of 32 bytes>`.
pub fn ed25519_key(lit: &StrLit) -> Result<[u8; 32], Diagnostic> {
    let err = |why: &str| {
        Diagnostic::error("E0036", lit.span, format!("invalid authority key: {why}"))
            .with_label("not an ed25519 public key")
            .with_help("write `key \"ed25519:<base64 of the 32-byte public key>\"`; `egc exception keygen` makes a key pair")
    };
    let Some(encoded) = lit.value.strip_prefix("ed25519:") else {
        return Err(err("the key must start with `ed25519:`"));
    };
    let bytes = base64_decode(encoded.trim()).ok_or_else(|| err("the key is not valid base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| err(&format!("the key has {} bytes, not 32", bytes.len())))
}

/// Standard base64 (with or without padding).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in trimmed.bytes() {
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    // Leftover bits must be zero padding of fewer than 6 bits.
    if bits >= 6 || (buffer & ((1 << bits) - 1)) != 0 {
        return None;
    }
    Some(out)
}

pub fn image_digest(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let digest = value.rsplit_once('@').map(|(_, d)| d).unwrap_or(value);
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    });
    if ok {
        Ok(value.to_string())
    } else {
        Err(Diagnostic::error(
            "E0035",
            lit.span,
            format!("`{value}` is not an image digest"),
        )
        .with_label("expected sha256:<64 lower-case hex digits>")
        .with_help("pin the image by digest: `image \"sha256:...\"` or `image \"registry.example/agent@sha256:...\"`"))
    }
}

/// `executable "sha256:<64 hex>"`: the SHA-256 of a program or script file.
pub fn executable_digest(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let ok = value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    });
    if ok {
        Ok(value.to_string())
    } else {
        Err(Diagnostic::error(
            "E0035",
            lit.span,
            format!("`{value}` is not a SHA-256 digest of a file"),
        )
        .with_label("expected sha256:<64 lower-case hex digits>")
        .with_help("pin the program by its digest: `executable \"sha256:...\"` (the output of `sha256sum PROGRAM`, prefixed with `sha256:`)"))
    }
}

pub fn cgroup_path(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let trimmed = value.trim_end_matches('/');
    let ok = value.starts_with('/')
        && trimmed.len() > 1
        && trimmed.split('/').skip(1).all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-@:+".contains(ch))
        });
    if ok {
        Ok(value.trim_end_matches('/').to_string())
    } else {
        Err(Diagnostic::error(
            "E0035",
            lit.span,
            format!("`{value}` is not a cgroup v2 path"),
        )
        .with_label("expected an absolute path below the cgroup root")
        .with_help("write a path such as \"/agents/invoice-bot\", relative to /sys/fs/cgroup: names of letters, digits, `.`, `_`, `-`, `@`, `:` or `+`, without empty, `.` or `..` components"))
    }
}

/// A Kubernetes namespace name (an RFC 1123 label).
/// A local socket path for `unix "..."`: absolute, at most 107 bytes (the kernel's
/// `sun_path` with its final NUL), without NUL, `.`, `..` or empty components, and not an
/// abstract socket (`@name` or a leading NUL). E0044 for an abstract socket, E0043 for
/// everything else.
pub fn unix_socket_path(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let shown: String = value.escape_debug().take(60).collect();
    if value.starts_with('@') || value.starts_with('\0') {
        return Err(Diagnostic::error(
            "E0044",
            lit.span,
            format!("`{shown}` is an abstract socket, which a policy cannot name"),
        )
        .with_label("abstract socket")
        .with_help("abstract sockets have no file and no permissions, so no layer can tell them apart; have the service listen on a path such as \"/run/service/agent.sock\" and name that"));
    }
    let bad = |label: &str, help: &str| {
        Err(Diagnostic::error(
            "E0043",
            lit.span,
            format!("`{shown}` is not a usable local socket path"),
        )
        .with_label(label.to_string())
        .with_help(help.to_string()))
    };
    if value.contains('\0') {
        return bad(
            "contains a NUL byte",
            "a socket path ends at its first NUL byte; remove it",
        );
    }
    if !value.starts_with('/') {
        return bad(
            "not an absolute path",
            "write the absolute path of the socket, such as \"/run/vault/agent.sock\"; a relative path would depend on the agent's working directory",
        );
    }
    if value.len() > crate::model::MAX_UNIX_PATH_BYTES {
        return bad(
            "longer than 107 bytes",
            "Linux socket paths hold at most 107 bytes; move the socket to a shorter path",
        );
    }
    if value.len() == 1 || value.ends_with('/') {
        return bad(
            "names a directory, not a socket",
            "name the socket file itself, such as \"/run/vault/agent.sock\"",
        );
    }
    if value
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad(
            "has an empty, `.` or `..` component",
            "write the path in its plain form, without `//`, `/./` or `/../`, so that what is approved is what is opened",
        );
    }
    Ok(value.to_string())
}

pub fn namespace(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_string())
    } else {
        Err(selector_error(
            lit.span,
            format!("`{value}` is not a valid namespace name"),
            "namespaces are 1 to 63 lower-case letters, digits or `-`",
        ))
    }
}

/// A Kubernetes label key (optional DNS prefix and `/`) or value.
pub fn label_key(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    let (prefix, name) = match value.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    });
    if prefix_ok && label_name_ok(name, false) {
        Ok(value.to_string())
    } else {
        Err(selector_error(
            lit.span,
            format!("`{value}` is not a valid label key"),
            "label keys are an optional DNS prefix and `/`, then up to 63 letters, digits, `-`, `_` or `.`",
        ))
    }
}

pub fn label_value(lit: &StrLit) -> Result<String, Diagnostic> {
    let value = lit.value.as_str();
    if label_name_ok(value, true) {
        Ok(value.to_string())
    } else {
        Err(selector_error(
            lit.span,
            format!("`{value}` is not a valid label value"),
            "label values are up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
        ))
    }
}

fn label_name_ok(name: &str, allow_empty: bool) -> bool {
    if name.is_empty() {
        return allow_empty;
    }
    name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn selector_error(span: Span, message: String, help: &str) -> Diagnostic {
    Diagnostic::error("E0040", span, message)
        .with_label("invalid selector")
        .with_help(help.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_syntax::FileId;

    fn s(value: &str) -> StrLit {
        StrLit {
            value: value.into(),
            span: Span::new(FileId(0), 0, 0),
        }
    }

    #[test]
    fn host_patterns() {
        let p = host_pattern(&s("*.Example.COM.")).unwrap();
        assert!(p.matches("a.example.com"));
        assert!(p.matches("A.EXAMPLE.COM."));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("a.b.example.com"));
        let pp = host_pattern(&s("**.example.com")).unwrap();
        assert!(pp.matches("a.b.example.com"));
        assert!(!pp.matches("example.com"));
        assert!(is_too_broad(&host_pattern(&s("*.com")).unwrap()));
        assert!(!is_too_broad(&host_pattern(&s("*.example.com")).unwrap()));
        assert_eq!(host_pattern(&s("a.**.com")).unwrap_err().code, "E0025");
        assert_eq!(host_pattern(&s("192.0.2.1")).unwrap_err().code, "E0025");
    }

    #[test]
    fn base64_and_durations() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode("a$").is_none());
        let d = DurationLit {
            text: "15m".into(),
            span: Span::default(),
        };
        assert_eq!(duration(&d).unwrap(), 900);
    }
}
