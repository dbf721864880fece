//! Error recovery: what a parse error in one item is reported as (E0001, with what was
//! expected and what was found, and help for the item's keyword).

use super::items::ItemParser;
use super::*;

impl ItemParser<'_> {
    pub(super) fn report(
        &mut self,
        error: pest::error::Error<Rule>,
        base: usize,
        start: usize,
        end: usize,
        keyword: &Token,
    ) {
        let item_keyword = keyword.text(self.source);
        let chunk_tokens = self.tokens.get(start..end).unwrap_or(&[]);
        if let Some(bad) = chunk_tokens.iter().find(|t| t.kind == TokenKind::Error) {
            let text = bad.text(self.source);
            let shown: String = text.chars().take(20).collect();
            self.diagnostics.push(
                Diagnostic::error(
                    "E0002",
                    Span::new(self.file, bad.start(), bad.end()),
                    format!("invalid character(s) `{}`", shown.escape_debug()),
                )
                .with_label("not part of the language")
                .with_help("names use letters, digits, `_` and `-`; text goes in double quotes"),
            );
            return;
        }
        if let Some(bad) = chunk_tokens
            .iter()
            .find(|t| t.kind == TokenKind::UnterminatedString)
        {
            self.diagnostics.push(
                Diagnostic::error(
                    "E0003",
                    Span::new(self.file, bad.start(), bad.end()),
                    "this string has no closing quote",
                )
                .with_label("string starts here")
                .with_help("add `\"` at the end of the string; strings cannot span lines"),
            );
            return;
        }
        let offset = match error.location {
            pest::error::InputLocation::Pos(p) => base + p,
            pest::error::InputLocation::Span((s, _)) => base + s,
        };
        let found = chunk_tokens
            .iter()
            .find(|t| t.end() > offset && !t.kind.is_trivia())
            .copied();
        let (span, found_text) = match found {
            Some(t) => (
                Span::new(self.file, t.start(), t.end()),
                describe_token(&t, self.source),
            ),
            None => (
                Span::new(self.file, offset, offset),
                "the end of the file".to_string(),
            ),
        };
        let expected = match &error.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                let mut names: Vec<String> =
                    positives.iter().filter_map(|r| describe_rule(*r)).collect();
                names.sort();
                names.dedup();
                names
            }
            pest::error::ErrorVariant::CustomError { message } => vec![message.clone()],
        };
        // An item whose braces never close: say so at its first `{`.
        let depth: i64 = chunk_tokens
            .iter()
            .map(|t| match t.kind {
                TokenKind::LBrace => 1,
                TokenKind::RBrace => -1,
                _ => 0,
            })
            .sum();
        let at_end = found.is_none();
        if depth > 0 && at_end {
            if let Some(open) = chunk_tokens.iter().find(|t| t.kind == TokenKind::LBrace) {
                let name = chunk_tokens
                    .get(1)
                    .filter(|t| t.kind == TokenKind::Ident)
                    .map(|t| format!("{item_keyword} `{}`", t.text(self.source)))
                    .unwrap_or_else(|| format!("this {item_keyword}"));
                let next = if end < self.tokens.len() || self.tokens_end < self.source.len() {
                    "before the next item"
                } else {
                    "before the end of the file"
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        "E0001",
                        Span::new(self.file, open.start(), open.end()),
                        format!("{name} is not closed: expected `}}` {next}"),
                    )
                    .with_label("this `{` has no matching `}`")
                    .with_help("add the missing `}` at the end of the item"),
                );
                return;
            }
        }
        let message = if expected.is_empty() {
            format!("unexpected {found_text}")
        } else {
            format!("expected {}, found {found_text}", join_or(&expected))
        };
        self.diagnostics.push(
            Diagnostic::error("E0001", span, message)
                .with_label("unexpected here")
                .with_help(item_help(item_keyword)),
        );
    }
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

pub(super) fn describe_token(token: &Token, source: &str) -> String {
    let text = token.text(source);
    match token.kind {
        TokenKind::Ident => format!("`{text}`"),
        TokenKind::String => "a string".to_string(),
        TokenKind::Number => format!("the number `{text}`"),
        TokenKind::LBrace => "`{`".to_string(),
        TokenKind::RBrace => "`}`".to_string(),
        _ => {
            let shown: String = text.chars().take(30).collect();
            format!("`{shown}`")
        }
    }
}

fn describe_rule(rule: Rule) -> Option<String> {
    let text = match rule {
        Rule::ident | Rule::qname => "a name",
        Rule::string => "a string",
        Rule::number => "a number",
        Rule::port_range => "a port range",
        Rule::duration => "a duration such as `15m`",
        Rule::cidr_lit | Rule::ipv4 | Rule::ipv6 => "a CIDR such as `192.0.2.0/24`",
        Rule::star => "`*`",
        Rule::labels => "`{`",
        Rule::label => "a label `key = \"value\"`",
        Rule::dest_block => "`{`",
        Rule::EOI => "the end of the item",
        Rule::host_entry => "`host`",
        Rule::cidr_entry => "`cidr`",
        Rule::workload_entry => "`workload`",
        Rule::port_entry => "`port`",
        Rule::protocol_entry => "`protocol`",
        Rule::sni_entry => "`sni optional`",
        Rule::passing => "`passing`",
        Rule::step => "`step`",
        Rule::step_uses => "`uses`",
        Rule::step_invokes => "`invokes`",
        Rule::cannot_reach => "`cannot reach`",
        Rule::can_reach => "`can reach`",
        Rule::agent_claim => "`agent`",
        Rule::data_claim => "`data`",
        Rule::connect_entry => "`connect`",
        Rule::syscalls_entry => "`syscalls`",
        Rule::grant_entry => "`grant`",
        Rule::workflows_entry => "`workflows`",
        Rule::image_entry => "`image`",
        Rule::executable_entry => "`executable`",
        Rule::cgroup_entry => "`cgroup`",
        Rule::uid_entry => "`uid`",
        Rule::uses_entry => "`uses`",
        Rule::handles_entry => "`handles`",
        Rule::invokes_entry => "`invokes`",
        Rule::agents_entry => "`agents`",
        Rule::to_entry => "`to`",
        Rule::approver_entry => "`approver`",
        Rule::orchestrator_entry => "`orchestrator`",
        Rule::ordered_entry => "`ordered`",
        Rule::max_ttl_entry => "`max_ttl`",
        Rule::max_uses_entry => "`max_uses`",
        Rule::audit_entry => "`audit`",
        Rule::legal_basis_entry => "`legal_basis`",
        Rule::key_entry => "`key`",
        Rule::owner_entry => "`owner`",
        Rule::approve_entry => "`approve`",
        Rule::approve_grant_entry => "`approve grant`",
        Rule::approve_unix_entry => "`approve unix`",
        Rule::unix_entry => "`unix`",
        Rule::justified_entry => "`justified_by sbom`",
        Rule::clear_entry => "`clear`",
        _ => {
            let name = format!("{rule:?}");
            if let Some(keyword) = name.strip_prefix("k_") {
                return Some(format!("`{keyword}`"));
            }
            return None;
        }
    };
    Some(text.to_string())
}

fn item_help(keyword: &str) -> String {
    match keyword {
        "import" => "write `import std.dns`, `import std.dns as d` or `import \"file.egress\" as name`".into(),
        "data" => "declare data classes as `data pii, secrets`".into(),
        "destination" => "a destination holds `host`, `cidr`, `workload`, `port` and `protocol` entries inside `{ }`".into(),
        "capability" => "a capability holds `connect`, `syscalls`, `grant`, `unix`, `workflows` and `justified_by sbom` entries inside `{ }`".into(),
        "agent" => "an agent holds `workload`, `image`, `executable`, `cgroup`, `uid`, `uses`, `handles` and `invokes` entries inside `{ }`".into(),
        "workflow" => "a workflow holds steps: `step AGENT uses CAPABILITY` or `step AGENT invokes AGENT passing CLASS`".into(),
        "exception" => "an exception holds `agents`, `to`, `approver`, `max_ttl`, `max_uses`, `audit` and `legal_basis` entries".into(),
        "authority" => "an authority holds `key \"ed25519:...\"` and `max_ttl` entries".into(),
        "zone" => "a zone holds `owner`, `agents`, `approve`, `approve grant CAP_...`, `approve unix \"/path\"` and `clear CLASS to DEST` entries".into(),
        "assert" => "an assertion holds claims: `agent A cannot reach D`, `agent A can reach D`, `data C never reaches D`".into(),
        "syscalls" => "a syscall group lists syscall names: `syscalls NAME { read, write }`".into(),
        "capset" => "a capability set lists Linux capabilities: `capset NAME { CAP_NET_BIND_SERVICE }`".into(),
        _ => "see `spec/` for the grammar".into(),
    }
}
