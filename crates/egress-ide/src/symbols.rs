//! Document and workspace symbols, from the syntax tree (they work in files that do not
//! check).

use std::path::{Path, PathBuf};

use egress_syntax::ast::{Ident, ImportPath, Item, ItemKind};

use crate::db::span_range;
use crate::{normalize, Analysis, TextRange};

/// A declaration in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSymbol {
    pub name: String,
    /// The keyword that declares it: `destination`, `agent`, `data`, `import`, ...
    pub kind: &'static str,
    /// The first line of the doc comment, if any.
    pub detail: Option<String>,
    /// The whole item.
    pub range: TextRange,
    /// The name.
    pub selection_range: TextRange,
}

/// A declaration anywhere in the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceSymbol {
    pub name: String,
    pub kind: &'static str,
    pub path: PathBuf,
    pub range: TextRange,
    /// The file the symbol is declared in, relative to its workspace root.
    pub container: String,
}

/// The names an item declares (a `data` item declares several; an `import` with `as`
/// declares its alias).
pub(crate) fn declared_idents(item: &Item) -> Vec<&Ident> {
    match &item.kind {
        ItemKind::Data(data) => data.names.iter().collect(),
        ItemKind::Import(import) => import.alias.iter().collect(),
        _ => item.name().into_iter().collect(),
    }
}

pub(crate) fn document_symbols_of(items: &[Item]) -> Vec<DocumentSymbol> {
    let mut out = Vec::new();
    for item in items {
        let detail = item
            .doc
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
            .map(str::to_string);
        if let ItemKind::Import(import) = &item.kind {
            let (name, span) = match (&import.alias, &import.path) {
                (Some(alias), _) => (alias.text.clone(), alias.span),
                (None, ImportPath::Module(m)) => (m.text.clone(), m.span),
                (None, ImportPath::File(f)) => (f.value.clone(), f.span),
            };
            out.push(DocumentSymbol {
                name,
                kind: "import",
                detail,
                range: span_range(item.span),
                selection_range: span_range(span),
            });
            continue;
        }
        for ident in declared_idents(item) {
            out.push(DocumentSymbol {
                name: ident.text.clone(),
                kind: item.keyword(),
                detail: detail.clone(),
                range: span_range(item.span),
                selection_range: span_range(ident.span),
            });
        }
    }
    out
}

impl Analysis {
    /// The declarations of one file, in source order.
    pub fn document_symbols(&self, path: &Path) -> Vec<DocumentSymbol> {
        let Some(text) = self.file_text(&normalize(path)) else {
            return Vec::new();
        };
        let parsed = self.parse_cached(&text);
        document_symbols_of(&parsed.ast.items)
    }

    /// Declarations in every policy file of the workspace whose name matches `query`
    /// (case-insensitive; the query's characters in order), best matches first, at most
    /// `limit`.
    pub fn workspace_symbols(&self, query: &str, limit: usize) -> Vec<WorkspaceSymbol> {
        let query = query.to_lowercase();
        let mut scored: Vec<(u8, WorkspaceSymbol)> = Vec::new();
        for path in self.workspace_files() {
            let Some(text) = self.file_text(&path) else {
                continue;
            };
            let parsed = self.parse_cached(&text);
            let container = self.project_of(&path).rel;
            for symbol in document_symbols_of(&parsed.ast.items) {
                let name = symbol.name.to_lowercase();
                let score = if name == query {
                    0
                } else if name.starts_with(&query) {
                    1
                } else if name.contains(&query) {
                    2
                } else if is_subsequence(&query, &name) {
                    3
                } else {
                    continue;
                };
                scored.push((
                    score,
                    WorkspaceSymbol {
                        name: symbol.name,
                        kind: symbol.kind,
                        path: path.clone(),
                        range: symbol.selection_range,
                        container: container.clone(),
                    },
                ));
            }
        }
        scored.sort_by(|a, b| {
            (a.0, &a.1.name, &a.1.path, a.1.range).cmp(&(b.0, &b.1.name, &b.1.path, b.1.range))
        });
        scored.into_iter().take(limit).map(|(_, s)| s).collect()
    }
}

fn is_subsequence(needle: &str, haystack: &str) -> bool {
    let mut chars = haystack.chars();
    needle.chars().all(|c| chars.any(|h| h == c))
}
