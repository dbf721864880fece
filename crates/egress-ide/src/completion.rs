//! Completion of keywords, declared names (spelled as this file must write them) and
//! stdlib modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use egress_check::LINUX_CAPS;
use egress_syntax::ast::{ImportPath, ItemKind};
use egress_syntax::lexer::{Token, TokenKind, ITEM_KEYWORDS};

use crate::db::FileContext;
use crate::{Analysis, TextRange};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompletionKind {
    Keyword,
    /// A declared name, with the keyword that declares it (`destination`, `agent`, ...).
    Name(&'static str),
    /// A stdlib module (`std.dns`).
    Module,
    /// A fixed value: a protocol, a Linux capability.
    Value,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompletionItem {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: Option<String>,
    /// The text to insert in place of `replace`.
    pub insert_text: String,
    /// The partial word before the cursor that the completion replaces.
    pub replace: TextRange,
}

fn entry_keywords(item: &str) -> &'static [&'static str] {
    match item {
        "destination" => &["host", "cidr", "workload", "port", "protocol", "sni"],
        "capability" => &[
            "connect",
            "syscalls",
            "grant",
            "workflows",
            "unix",
            "justified_by",
        ],
        "agent" => &[
            "workload",
            "image",
            "executable",
            "cgroup",
            "uid",
            "uses",
            "handles",
            "invokes",
        ],
        "workflow" => &["orchestrator", "ordered", "step"],
        "exception" => &[
            "agents",
            "to",
            "approver",
            "max_ttl",
            "max_uses",
            "audit",
            "legal_basis",
        ],
        "authority" => &["key", "max_ttl"],
        "zone" => &["owner", "agents", "approve", "clear"],
        "assert" => &["agent", "data"],
        _ => &[],
    }
}

/// Which kind of name a keyword expects after it.
fn expected_kinds(keyword: &str, item: &str) -> &'static [&'static str] {
    match keyword {
        "connect" | "approve" | "to" | "audit" | "reach" | "reaches" => &["destination"],
        "uses" => &["capability"],
        "handles" | "passing" | "clear" => &["data"],
        "data" if item == "assert" => &["data"],
        "invokes" | "agents" | "step" | "agent" => &["agent"],
        "syscalls" => &["syscalls"],
        "grant" => &["capset"],
        "workflows" => &["workflow"],
        "approver" => &["authority"],
        _ => &[],
    }
}

impl Analysis {
    /// Completions at `offset`, sorted by label.
    pub fn completions(&self, path: &Path, offset: usize) -> Vec<CompletionItem> {
        let Some(context) = self.file_context(path) else {
            return Vec::new();
        };
        let text: &str = &context.text;
        let offset = offset.min(text.len());
        // The partial word before the cursor (names may be qualified: `dns.ku`).
        let before = text.get(..offset).unwrap_or("");
        let word_len = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .map(char::len_utf8)
            .sum::<usize>();
        let word_start = offset - word_len;
        let replace = TextRange::new(word_start, offset);
        let tokens: Vec<Token> = context
            .parsed
            .tokens
            .iter()
            .copied()
            .filter(|t| t.end() <= word_start && !t.kind.is_trivia())
            .collect();
        let mut depth: usize = 0;
        let mut item_keyword = "";
        for token in &tokens {
            match token.kind {
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace => depth = depth.saturating_sub(1),
                TokenKind::Ident if depth == 0 => {
                    let t = token.text(text);
                    if ITEM_KEYWORDS.contains(&t) {
                        item_keyword = ITEM_KEYWORDS
                            .iter()
                            .find(|k| **k == t)
                            .copied()
                            .unwrap_or("");
                    }
                }
                _ => {}
            }
        }
        // The keyword that governs the cursor: the last keyword before it in this entry.
        let mut governing: Option<&str> = None;
        for token in tokens.iter().rev() {
            match token.kind {
                TokenKind::LBrace | TokenKind::RBrace => break,
                TokenKind::Ident if egress_syntax::lexer::is_keyword(token.text(text)) => {
                    governing = Some(token.text(text));
                    break;
                }
                _ => {}
            }
        }
        let item = if depth == 0 { "" } else { item_keyword };
        let mut out: BTreeSet<CompletionItem> = BTreeSet::new();
        let mut push = |label: &str, kind: CompletionKind, detail: Option<String>| {
            out.insert(CompletionItem {
                label: label.to_string(),
                insert_text: label.to_string(),
                kind,
                detail,
                replace,
            });
        };
        // A name is expected right after the keyword or after a comma in its list.
        let last = tokens.last();
        let wants_value = last.is_some_and(|t| {
            t.kind == TokenKind::Comma
                || (t.kind == TokenKind::Ident && Some(t.text(text)) == governing)
        });
        if depth == 0 {
            if governing == Some("import") && wants_value {
                for module in self.stdlib_modules(&context) {
                    push(&format!("std.{module}"), CompletionKind::Module, None);
                }
            } else {
                for keyword in ITEM_KEYWORDS {
                    push(keyword, CompletionKind::Keyword, None);
                }
            }
            return out.into_iter().collect();
        }
        if wants_value {
            if let Some(keyword) = governing {
                if keyword == "protocol" {
                    push("tcp", CompletionKind::Value, None);
                    push("udp", CompletionKind::Value, None);
                }
                let expected = expected_kinds(keyword, item);
                for (spelling, kind, detail) in visible_names(&context) {
                    if expected.contains(&kind) {
                        push(&spelling, CompletionKind::Name(kind), detail);
                    }
                }
                if keyword == "grant" {
                    for cap in LINUX_CAPS {
                        push(cap, CompletionKind::Value, Some("Linux capability".into()));
                    }
                }
                if !expected.is_empty() || keyword == "protocol" {
                    return out.into_iter().collect();
                }
            }
        }
        // A keyword that continues the entry, else one that starts a new entry.
        let continuation: &[&str] = match (governing, item) {
            (Some("invokes"), _) => &["passing"],
            (Some("agent"), "assert") => &["can", "cannot"],
            (Some("can" | "cannot"), _) => &["reach"],
            (Some("data"), "assert") => &["never"],
            (Some("never"), _) => &["reaches"],
            (Some("clear"), _) => &["to"],
            (Some("workload"), _) => &["namespace"],
            (Some("namespace"), _) => &["labels"],
            (Some("cidr"), _) => &["except"],
            (Some("sni"), _) => &["optional"],
            (Some("step"), _) => &["uses", "invokes"],
            _ => &[],
        };
        for keyword in continuation {
            push(keyword, CompletionKind::Keyword, None);
        }
        let inline_destination = depth >= 2 || item == "destination";
        let keywords = if inline_destination {
            entry_keywords("destination")
        } else {
            entry_keywords(item)
        };
        for keyword in keywords {
            push(keyword, CompletionKind::Keyword, None);
        }
        out.into_iter().collect()
    }

    /// The stdlib modules embedded in the checker.
    fn stdlib_modules(&self, _context: &FileContext) -> BTreeSet<String> {
        egress_check::stdlib::MODULES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

/// Every declared name the file can use, spelled as the file must write it: the local
/// name for its own declarations, `alias.name` through an import.
fn visible_names(context: &FileContext) -> Vec<(String, &'static str, Option<String>)> {
    let mut out = Vec::new();
    let Some(file_id) = context.file_id else {
        // The checker did not load the file: offer the file's own declarations.
        for item in &context.parsed.ast.items {
            for ident in crate::symbols::declared_idents(item) {
                if !matches!(item.kind, ItemKind::Import(_)) {
                    out.push((ident.text.clone(), item.keyword(), item.doc.clone()));
                }
            }
        }
        return out;
    };
    // Module prefix by file path, from this file's imports and existing references.
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    for item in &context.parsed.ast.items {
        let ItemKind::Import(import) = &item.kind else {
            continue;
        };
        match &import.path {
            ImportPath::Module(module) => {
                let path = format!("{}.egress", module.text.replace('.', "/"));
                let alias = import
                    .alias
                    .as_ref()
                    .map(|a| a.text.clone())
                    .unwrap_or_else(|| module.text.rsplit('.').next().unwrap_or("").to_string());
                prefixes.insert(path, alias);
            }
            ImportPath::File(file) => {
                let joined = if context.project.dir.is_empty() {
                    file.value.clone()
                } else {
                    format!("{}/{}", context.project.dir, file.value)
                };
                let normalized = crate::normalize(Path::new(&joined));
                let path = normalized.to_string_lossy().replace('\\', "/");
                let alias = import
                    .alias
                    .as_ref()
                    .map(|a| a.text.clone())
                    .unwrap_or_else(|| {
                        Path::new(&file.value)
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                prefixes.insert(path, alias);
            }
        }
    }
    for reference in &context.result.references {
        if reference.span.file != file_id {
            continue;
        }
        let written = context
            .text
            .get(reference.span.range())
            .unwrap_or("")
            .to_string();
        if let (Some((prefix, _)), Some(path)) = (
            written.rsplit_once('.'),
            context.file_path_of(reference.target.file),
        ) {
            prefixes.entry(path).or_insert_with(|| prefix.to_string());
        }
    }
    for symbol in &context.result.symbols {
        if symbol.kind == "import" {
            continue;
        }
        let spelling = if symbol.name_span.file == file_id {
            symbol.local.clone()
        } else {
            let Some(path) = context.file_path_of(symbol.name_span.file) else {
                continue;
            };
            match prefixes.get(&path) {
                Some(prefix) => format!("{prefix}.{}", symbol.local),
                None => continue,
            }
        };
        let detail = symbol
            .doc
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(|d| format!("{} — {d}", symbol.kind))
            .or_else(|| Some(symbol.kind.to_string()));
        out.push((spelling, symbol.kind, detail));
    }
    out
}
