//! Declarations and name resolution: collecting every file's declarations, qualified
//! names, resolving a use to its declaration and the diagnostics for unknown names.

use super::modules::stdlib_source;
use super::*;

impl Checker<'_> {
    pub(super) fn next_index(&mut self, kind: Kind) -> u32 {
        let counter = self.counts.entry(kind).or_insert(0);
        let index = *counter;
        *counter += 1;
        index
    }

    pub(super) fn declare(
        &mut self,
        file: usize,
        kind: Kind,
        name: &str,
        name_span: Span,
        item_span: Span,
        doc: Option<&str>,
    ) {
        let index = self.next_index(kind);
        if self.editor_data {
            let module = self
                .files
                .get(file)
                .map(|f| f.module.as_str())
                .unwrap_or("");
            let qualified = format!("{module}.{name}");
            self.symbols.push(Symbol {
                kind: kind.name(),
                local: name.to_string(),
                qualified,
                name_span,
                item_span,
                doc: doc.map(str::to_string),
            });
        }
        let Some(data) = self.files.get_mut(file) else {
            return;
        };
        if let Some(previous) = data.decls.get(name) {
            let previous = *previous;
            self.diagnostics.push(
                Diagnostic::error(
                    "E0011",
                    name_span,
                    format!("`{name}` is declared twice in this module"),
                )
                .with_label(format!("second declaration, as {}", kind.article()))
                .with_secondary(
                    previous.name_span,
                    format!("first declared here as {}", previous.kind.article()),
                )
                .with_help(
                    "names are unique within a module, whatever their kind: rename one of them",
                ),
            );
            return;
        }
        if let Some(import) = data.imports.get(name) {
            let span = import.span;
            self.diagnostics.push(
                Diagnostic::error(
                    "E0011",
                    name_span,
                    format!("`{name}` is already the name of an imported module"),
                )
                .with_label("clashes with an import")
                .with_secondary(span, "imported here")
                .with_help("rename the declaration or import the module `as` another name"),
            );
            return;
        }
        data.decls.insert(
            name.to_string(),
            Decl {
                kind,
                index,
                name_span,
            },
        );
    }

    pub(crate) fn collect(&mut self) {
        for file in 0..self.files.len() {
            // Moved out while declaring, and back after.
            let items = match self.files.get_mut(file) {
                Some(f) => std::mem::take(&mut f.items),
                None => continue,
            };
            let text = self
                .files
                .get(file)
                .map(|f| f.text.clone())
                .unwrap_or_default();
            for held in &items {
                let item = match held {
                    Held::Head(head) => {
                        let name_span = head.name_span(file);
                        let name = text.get(name_span.range()).unwrap_or("");
                        self.declare(file, head.kind, name, name_span, head.span(file), None);
                        continue;
                    }
                    Held::Whole(item) => item,
                };
                let kind = match &item.kind {
                    ItemKind::Import(_) => continue,
                    ItemKind::Data(d) => {
                        for name in &d.names {
                            self.declare(
                                file,
                                Kind::Data,
                                &name.text,
                                name.span,
                                item.span,
                                item.doc.as_deref(),
                            );
                        }
                        continue;
                    }
                    other => match item_kind(other) {
                        Some(kind) => kind,
                        None => continue,
                    },
                };
                if let Some(name) = item.name() {
                    self.declare(
                        file,
                        kind,
                        &name.text,
                        name.span,
                        item.span,
                        item.doc.as_deref(),
                    );
                }
            }
            if let Some(f) = self.files.get_mut(file) {
                f.items = items;
            }
        }
    }
}

impl Builder<'_> {
    pub(super) fn qualified(&self, file: usize, local: &str) -> String {
        let module = self
            .files
            .get(file)
            .map(|f| f.module.as_str())
            .unwrap_or("");
        format!("{module}.{local}")
    }

    pub(super) fn name(&self, file: usize, ident: &Ident) -> Name {
        Name {
            local: ident.text.clone(),
            qualified: self.qualified(file, &ident.text),
            span: ident.span,
        }
    }

    /// Resolves `ident` (as used in `file`) to a declaration of kind `want`.
    pub(super) fn resolve(&mut self, file: usize, ident: &Ident, want: Kind) -> Option<u32> {
        let text = ident.text.as_str();
        let (target_file, local) = match text.split_once('.') {
            Some((alias, rest)) => {
                let import = self.files.get(file).and_then(|f| f.imports.get(alias));
                match import {
                    Some(info) => {
                        // Read first: builders on every core resolve through the same
                        // import, and a store on each use would bounce its cache line.
                        if !info.used.load(Ordering::Relaxed) {
                            info.used.store(true, Ordering::Relaxed);
                        }
                        match info.target {
                            Some(t) => (t, rest),
                            None => return None, // Already reported at the import.
                        }
                    }
                    None => {
                        let help = if alias == "std" {
                            let module = rest.split('.').next().unwrap_or(rest);
                            format!(
                                "import the module first: `import std.{module}`, then write `{}`",
                                rest
                            )
                        } else if stdlib_source(alias).is_some() {
                            format!("import the stdlib module first: `import std.{alias}`")
                        } else {
                            format!("`{alias}` is not an imported module in this file; import it with `import \"...\" as {alias}`")
                        };
                        self.diagnostics.push(
                            Diagnostic::error(
                                "E0010",
                                ident.span,
                                format!("unknown module `{alias}` in `{text}`"),
                            )
                            .with_label("not imported")
                            .with_help(help),
                        );
                        return None;
                    }
                }
            }
            None => (file, text),
        };
        let found = self
            .files
            .get(target_file)
            .and_then(|f| f.decls.get(local))
            .copied();
        match found {
            Some(decl) if decl.kind == want => {
                if self.editor_data {
                    let qualified = self.qualified(target_file, local);
                    self.references.push(Reference {
                        span: ident.span,
                        target: decl.name_span,
                        kind: want.name(),
                        qualified,
                    });
                }
                Some(decl.index)
            }
            Some(decl) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        "E0012",
                        ident.span,
                        format!(
                            "`{text}` is {}, but {} is expected here",
                            decl.kind.article(),
                            want.article()
                        ),
                    )
                    .with_label(format!("expected {}", want.article()))
                    .with_secondary(
                        decl.name_span,
                        format!("declared as {} here", decl.kind.article()),
                    )
                    .with_help(format!("name {} here", want.article())),
                );
                None
            }
            None => {
                self.unknown_name(file, target_file, ident, local, want);
                None
            }
        }
    }

    pub(super) fn unknown_name(
        &mut self,
        file: usize,
        target_file: usize,
        ident: &Ident,
        local: &str,
        want: Kind,
    ) {
        // Candidates: names of the wanted kind visible from `file`.
        let mut candidates: Vec<String> = Vec::new();
        if let Some(f) = self.files.get(target_file) {
            let prefix = if target_file == file {
                String::new()
            } else {
                ident
                    .text
                    .split_once('.')
                    .map(|(a, _)| format!("{a}."))
                    .unwrap_or_default()
            };
            candidates.extend(
                sorted_names(&f.decls, want)
                    .into_iter()
                    .map(|n| format!("{prefix}{n}")),
            );
        }
        if target_file == file {
            if let Some(f) = self.files.get(file) {
                for (alias, info) in &f.imports {
                    if let Some(target) = info.target.and_then(|t| self.files.get(t)) {
                        candidates.extend(
                            sorted_names(&target.decls, want)
                                .into_iter()
                                .map(|n| format!("{alias}.{n}")),
                        );
                    }
                }
            }
        }
        let mut diagnostic = Diagnostic::error(
            "E0010",
            ident.span,
            format!("unknown {} `{}`", want.noun(), ident.text),
        )
        .with_label(format!("no {} of this name", want.noun()));
        if let Some(best) =
            crate::suggest::closest(&ident.text, candidates.iter().map(|s| s.as_str()))
        {
            diagnostic = diagnostic
                .with_help(format!("did you mean `{best}`?"))
                .with_suggestion(ident.span, best.clone(), format!("replace with `{best}`"));
        } else if let Some(qualified) = self.imported_qualified(file, local, want) {
            diagnostic = diagnostic
                .with_help(format!("did you mean `{qualified}`?"))
                .with_suggestion(
                    ident.span,
                    qualified.clone(),
                    format!("replace with `{qualified}`"),
                );
        } else if let Some(elsewhere) = self.declared_elsewhere(file, local, want) {
            let how = match elsewhere
                .strip_prefix(STD_PREFIX)
                .and_then(|p| p.strip_suffix(".egress"))
            {
                Some(module) => format!("`import std.{module}` and write `{module}.{local}`"),
                None => format!("import `{elsewhere}` into this file"),
            };
            diagnostic =
                diagnostic.with_help(format!("`{local}` is declared in `{elsewhere}`: {how}"));
        } else {
            diagnostic = diagnostic.with_help(format!(
                "declare {} named `{local}` or import the module that declares it",
                want.article()
            ));
        }
        self.diagnostics.push(diagnostic);
    }

    /// `alias.local` when a module imported into `file` declares `local` of kind `want`.
    pub(super) fn imported_qualified(
        &self,
        file: usize,
        local: &str,
        want: Kind,
    ) -> Option<String> {
        let f = self.files.get(file)?;
        f.imports.iter().find_map(|(alias, info)| {
            let target = self.files.get(info.target?)?;
            target
                .decls
                .get(local)
                .filter(|d| d.kind == want)
                .map(|_| format!("{alias}.{local}"))
        })
    }

    pub(super) fn declared_elsewhere(
        &self,
        file: usize,
        local: &str,
        want: Kind,
    ) -> Option<String> {
        self.files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != file)
            .find(|(_, f)| f.decls.get(local).is_some_and(|d| d.kind == want))
            .map(|(_, f)| f.path.clone())
    }
}

/// The names of `decls` of kind `want`, in order (the candidates of a "did you mean" must
/// not depend on a hash map's order).
fn sorted_names(decls: &Decls, want: Kind) -> Vec<&str> {
    let mut names: Vec<&str> = decls
        .iter()
        .filter(|(_, d)| d.kind == want)
        .map(|(n, _)| n.as_str())
        .collect();
    names.sort_unstable();
    names
}
