//! Code actions: the fixes the checker suggests ("did you mean ...").

use std::path::Path;

use crate::db::span_range;
use crate::{Analysis, CodeAction, TextEdit, TextRange, WorkspaceEdit};

impl Analysis {
    /// Fixes for the diagnostics of `path` that overlap `range`.
    pub fn code_actions(&self, path: &Path, range: TextRange) -> Vec<CodeAction> {
        let Some(context) = self.file_context(path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for diagnostic in context.own_diagnostics() {
            let Some(suggestion) = &diagnostic.suggestion else {
                continue;
            };
            if !span_range(diagnostic.span).overlaps(range)
                && !span_range(suggestion.span).overlaps(range)
            {
                continue;
            }
            if suggestion.span.file != diagnostic.span.file {
                continue;
            }
            let mut edit = WorkspaceEdit::new();
            edit.insert(
                context.path.clone(),
                vec![TextEdit {
                    range: span_range(suggestion.span),
                    new_text: suggestion.replacement.clone(),
                }],
            );
            let title = if suggestion.title.is_empty() {
                format!("Replace with `{}`", suggestion.replacement)
            } else {
                suggestion.title.clone()
            };
            let action = CodeAction {
                title,
                code: diagnostic.code,
                edit,
                is_preferred: true,
            };
            if !out.contains(&action) {
                out.push(action);
            }
        }
        out
    }

    /// The file formatted by the formatter, or `None` when it does not parse (the
    /// formatter never guesses at broken input) or is already formatted.
    pub fn format(&self, path: &Path) -> Option<String> {
        let text = self.file_text(path)?;
        let formatted = egress_syntax::format::format_source(&text).ok()?;
        if formatted == *text {
            None
        } else {
            Some(formatted)
        }
    }
}
