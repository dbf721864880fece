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
