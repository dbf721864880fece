//! Go to definition, find references and rename, across files, modules and the stdlib.

use std::collections::BTreeSet;
use std::path::Path;

use egress_check::{CheckResult, Symbol};
use egress_syntax::lexer::is_keyword;

use crate::db::{FileContext, Project};
use crate::{Analysis, FileRange, FileRef, RenameError, TextEdit, TextRange, WorkspaceEdit};

impl Analysis {
    /// Where the name at `offset` is declared.
    pub fn definition(&self, path: &Path, offset: usize) -> Option<FileRange> {
        let context = self.file_context(path)?;
        let target = context.symbol_at(offset)?;
        context.location(self, target.symbol.name_span)
    }

    /// Every use of the name at `offset`, in every policy of the workspace, sorted; with
    /// the declaration when `include_declaration`.
    pub fn references(
        &self,
        path: &Path,
        offset: usize,
        include_declaration: bool,
    ) -> Vec<FileRange> {
        let Some(context) = self.file_context(path) else {
            return Vec::new();
        };
        let Some(target) = context.symbol_at(offset) else {
            return Vec::new();
        };
        let Some(declaration) = context.location(self, target.symbol.name_span) else {
            return Vec::new();
        };
        let mut out: BTreeSet<FileRange> = BTreeSet::new();
        for (project, result, reference) in self.uses_of(&context, &declaration) {
            if let Some(location) = self.span_location(&project, &result, reference) {
                out.insert(location);
            }
        }
        if include_declaration {
            out.insert(declaration);
        }
        out.into_iter().collect()
    }

    /// Every reference span, in every policy of the workspace, that resolves to the
    /// declaration at `declaration`.
    fn uses_of(
        &self,
        context: &FileContext,
        declaration: &FileRange,
    ) -> Vec<(Project, std::sync::Arc<CheckResult>, egress_syntax::Span)> {
        let mut out = Vec::new();
        for (project, result) in self.all_contexts(context) {
            for reference in &result.references {
                let Some(target) = self.span_location(&project, &result, reference.target) else {
                    continue;
                };
                if target == *declaration {
                    out.push((project.clone(), result.clone(), reference.span));
                }
            }
        }
        out
    }

    /// The range to rename at `offset` and the current name, if the name there can be
    /// renamed.
    pub fn prepare_rename(
        &self,
        path: &Path,
        offset: usize,
    ) -> Result<(TextRange, String), RenameError> {
        let context = self
            .file_context(path)
            .ok_or_else(|| RenameError("the file cannot be read".to_string()))?;
        if let Some((alias, range)) = alias_at(&context, offset) {
            return Ok((range, alias.name));
        }
        let target = context
            .symbol_at(offset)
            .ok_or_else(|| RenameError("no declared name here".to_string()))?;
        check_renamable(self, &context, target.symbol)?;
        // Only the last segment of a qualified reference is the name itself (or the
        // first, for an import alias).
        let text = context
            .text
            .get(target.range.start..target.range.end)
            .unwrap_or("");
        let local = &target.symbol.local;
        let range = name_range_in(text, target.range, local, target.symbol.kind == "import")
            .unwrap_or(target.range);
        Ok((range, local.clone()))
    }

    /// Renames the name at `offset` to `new_name` everywhere it is used, keeping module
    /// prefixes of qualified references and import aliases intact.
    pub fn rename(
        &self,
        path: &Path,
        offset: usize,
        new_name: &str,
    ) -> Result<WorkspaceEdit, RenameError> {
        let context = self
            .file_context(path)
            .ok_or_else(|| RenameError("the file cannot be read".to_string()))?;
        if let Some(result) = self.rename_alias(&context, offset, new_name) {
            return result;
        }
        let target = context
            .symbol_at(offset)
            .ok_or_else(|| RenameError("no declared name here".to_string()))?;
        let symbol = target.symbol;
        check_renamable(self, &context, symbol)?;
        if !is_valid_name(new_name) {
            return Err(RenameError(format!(
                "`{new_name}` is not a valid name: use letters, digits, `_` and `-`, starting with a letter or `_`, and no keyword"
            )));
        }
        let old = symbol.local.clone();
        if new_name == old {
            return Ok(WorkspaceEdit::new());
        }
        // A clash with a name declared in the same file would change what references mean.
        let clash = context.result.symbols.iter().find(|s| {
            s.name_span.file == symbol.name_span.file && s.local == new_name && s.kind != "import"
        });
        if let Some(clash) = clash {
            return Err(RenameError(format!(
                "`{new_name}` is already declared in this module (a {})",
                clash.kind
            )));
        }
        let declaration = context
            .location(self, symbol.name_span)
            .ok_or_else(|| RenameError("the declaration cannot be found".to_string()))?;
        let is_alias = symbol.kind == "import";
        let mut edit = WorkspaceEdit::new();
        let mut add = |file: &FileRef, range: TextRange| {
            if let FileRef::Path(p) = file {
                let edits = edit.entry(p.clone()).or_default();
                let edit = TextEdit {
                    range,
                    new_text: new_name.to_string(),
                };
                if !edits.contains(&edit) {
                    edits.push(edit);
                }
            }
        };
        let declaration_text = self
            .file_text_of(&declaration.file)
            .and_then(|t| {
                t.get(declaration.range.start..declaration.range.end)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let declaration_range = name_range_in(&declaration_text, declaration.range, &old, is_alias)
            .unwrap_or(declaration.range);
        add(&declaration.file, declaration_range);
        for (project, result, span) in self.uses_of(&context, &declaration) {
            let Some(location) = self.span_location(&project, &result, span) else {
                continue;
            };
            let text = self
                .file_text_of(&location.file)
                .and_then(|t| {
                    t.get(location.range.start..location.range.end)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            match name_range_in(&text, location.range, &old, is_alias) {
                Some(range) => add(&location.file, range),
                None => {
                    return Err(RenameError(format!(
                        "a reference to `{old}` is written `{text}`, which this rename does not understand"
                    )))
                }
            }
        }
        for edits in edit.values_mut() {
            edits.sort();
        }
        Ok(edit)
    }

    fn file_text_of(&self, file: &FileRef) -> Option<std::sync::Arc<str>> {
        match file {
            FileRef::Path(p) => self.file_text(p),
            FileRef::Stdlib { text, .. } => Some(text.clone()),
        }
    }
}

fn check_renamable(
    analysis: &Analysis,
    context: &FileContext,
    symbol: &Symbol,
) -> Result<(), RenameError> {
    let file = context
        .result
        .file(symbol.name_span.file)
        .ok_or_else(|| RenameError("the declaration cannot be found".to_string()))?;
    if file.is_stdlib {
        return Err(RenameError(format!(
            "`{}` is declared in the stdlib, which cannot be renamed from a policy",
            symbol.qualified
        )));
    }
    let _ = analysis;
    Ok(())
}

/// Where, inside a reference written `text` at `range`, the name `old` itself is: the
/// whole text, its last `.` segment, or (for an import alias) its first segment.
fn name_range_in(text: &str, range: TextRange, old: &str, is_alias: bool) -> Option<TextRange> {
    if text == old {
        return Some(range);
    }
    if is_alias {
        if text
            .strip_prefix(old)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            return Some(TextRange::new(range.start, range.start + old.len()));
        }
    } else if text
        .strip_suffix(old)
        .is_some_and(|rest| rest.ends_with('.'))
    {
        return Some(TextRange::new(range.end - old.len(), range.end));
    }
    None
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !is_keyword(name)
}

/// An import alias of the current file (`import std.dns` has the alias `dns`;
/// `import "x/y.egress" as y2` has `y2`).
struct Alias {
    name: String,
    /// The `as NAME` identifier, when written.
    explicit: Option<TextRange>,
    /// Where ` as NAME` goes when the alias is implicit: after the module path.
    path_end: usize,
    /// The import's module path or file string as written.
    path: String,
}

fn aliases(context: &FileContext) -> Vec<Alias> {
    use egress_syntax::ast::{ImportPath, ItemKind};
    let mut out = Vec::new();
    for item in &context.parsed.ast.items {
        let ItemKind::Import(import) = &item.kind else {
            continue;
        };
        let (default, path_span, path) = match &import.path {
            ImportPath::Module(module) => (
                module.text.rsplit('.').next().unwrap_or("").to_string(),
                module.span,
                module.text.clone(),
            ),
            ImportPath::File(file) => (
                Path::new(&file.value)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file.span,
                format!("\"{}\"", file.value),
            ),
        };
        out.push(Alias {
            name: import
                .alias
                .as_ref()
                .map(|a| a.text.clone())
                .unwrap_or(default),
            explicit: import
                .alias
                .as_ref()
                .map(|a| TextRange::new(a.span.start as usize, a.span.end as usize)),
            path_end: path_span.end as usize,
            path,
        });
    }
    out
}

/// The references of this file that go through `alias` (written `alias.NAME`), with the
/// range of the alias part.
fn alias_uses(context: &FileContext, alias: &str) -> Vec<TextRange> {
    let Some(file_id) = context.file_id else {
        return Vec::new();
    };
    let mut out: Vec<TextRange> = context
        .result
        .references
        .iter()
        .filter(|r| r.span.file == file_id)
        .filter(|r| {
            context
                .text
                .get(r.span.range())
                .and_then(|t| t.strip_prefix(alias))
                .is_some_and(|rest| rest.starts_with('.'))
        })
        .map(|r| TextRange::new(r.span.start as usize, r.span.start as usize + alias.len()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The alias under the cursor: on its `as NAME`, on the last segment of an implicit
/// module alias, or on the alias part of a qualified reference.
fn alias_at(context: &FileContext, offset: usize) -> Option<(Alias, TextRange)> {
    for alias in aliases(context) {
        if let Some(range) = alias.explicit {
            if range.touches(offset) {
                return Some((alias, range));
            }
        } else if alias.path_end >= alias.name.len()
            && TextRange::new(alias.path_end - alias.name.len(), alias.path_end).touches(offset)
            && !alias.path.starts_with('"')
        {
            let range = TextRange::new(alias.path_end - alias.name.len(), alias.path_end);
            return Some((alias, range));
        }
        let uses = alias_uses(context, &alias.name);
        if let Some(range) = uses.iter().find(|r| r.start <= offset && offset < r.end) {
            let range = *range;
            return Some((alias, range));
        }
    }
    None
}

impl Analysis {
    /// Renames an import alias: its `as NAME` (added when the alias was implicit) and
    /// every `alias.NAME` reference in the file. `None` when the cursor is on no alias.
    fn rename_alias(
        &self,
        context: &FileContext,
        offset: usize,
        new_name: &str,
    ) -> Option<Result<WorkspaceEdit, RenameError>> {
        let (alias, _) = alias_at(context, offset)?;
        if !is_valid_name(new_name) {
            return Some(Err(RenameError(format!(
                "`{new_name}` is not a valid name: use letters, digits, `_` and `-`, starting with a letter or `_`, and no keyword"
            ))));
        }
        if new_name == alias.name {
            return Some(Ok(WorkspaceEdit::new()));
        }
        if aliases(context).iter().any(|a| a.name == new_name) {
            return Some(Err(RenameError(format!(
                "`{new_name}` already names another import in this file"
            ))));
        }
        let mut edits = vec![match alias.explicit {
            Some(range) => TextEdit {
                range,
                new_text: new_name.to_string(),
            },
            None => TextEdit {
                range: TextRange::new(alias.path_end, alias.path_end),
                new_text: format!(" as {new_name}"),
            },
        }];
        for range in alias_uses(context, &alias.name) {
            edits.push(TextEdit {
                range,
                new_text: new_name.to_string(),
            });
        }
        edits.sort();
        let mut edit = WorkspaceEdit::new();
        edit.insert(context.path.clone(), edits);
        Some(Ok(edit))
    }

    /// Hover text for an import alias.
    pub(crate) fn alias_hover(
        &self,
        context: &FileContext,
        offset: usize,
    ) -> Option<(TextRange, String)> {
        let (alias, range) = alias_at(context, offset)?;
        let mut markdown = format!("```egress\nimport {} as {}\n```\n", alias.path, alias.name);
        let module_path = match alias.path.strip_prefix("std.") {
            Some(name) => format!("std/{name}.egress"),
            None => {
                let value = alias.path.trim_matches('"');
                let joined = if context.project.dir.is_empty() {
                    value.to_string()
                } else {
                    format!("{}/{value}", context.project.dir)
                };
                crate::normalize(Path::new(&joined))
                    .to_string_lossy()
                    .replace('\\', "/")
            }
        };
        let file = context.result.files.iter().find(|f| f.path == module_path);
        let names: Vec<String> = match file {
            Some(file) => context
                .result
                .symbols
                .iter()
                .filter(|s| s.name_span.file == file.id)
                .map(|s| format!("`{}.{}` ({})", alias.name, s.local, s.kind))
                .collect(),
            None => Vec::new(),
        };
        if !names.is_empty() {
            markdown.push_str(&format!("\n**Declares** {}\n", names.join(", ")));
        }
        Some((range, markdown.trim_end().to_string()))
    }
}
