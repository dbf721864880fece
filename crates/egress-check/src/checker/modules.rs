//! Loading files: the stdlib, imports (resolution, aliases) and import cycles.

use super::*;

impl Checker<'_> {
    pub(super) fn add_file(&mut self, path: String, text: String, is_stdlib: bool) -> usize {
        let index = self.files.len();
        // One copy of the text while it is parsed (a large file is most of the memory).
        let text: Arc<str> = Arc::from(text);
        // Without the model, each chunk's items are reduced to what declaring needs as
        // they are read, and read again when built. With it, they are kept whole: a
        // second read costs time (`egc verify` after an edit), and the model outgrows
        // the tree anyway.
        let docs = self.editor_data;
        let whole = self.keep_model;
        let chunked =
            egress_syntax::parse_chunks(Self::file_id(index), &text, |chunk, items, out| {
                if whole {
                    out.extend(items.drain(..).map(|i| Held::Whole(Box::new(i))));
                } else {
                    Held::of_chunk(&text, chunk, items, docs, out);
                }
            });
        self.diagnostics.extend(chunked.diagnostics);
        let mut items = chunked.kept;
        // In the parser's order (by start; stable).
        items.sort_by_key(Held::start);
        // Room for every declaration at once (a table grown by doubling copies itself).
        let decls = Decls::with_capacity_and_hasher(items.len(), Default::default());
        let chunks = chunked
            .chunks
            .iter()
            .map(|(start, end)| {
                (
                    u32::try_from(*start).unwrap_or(u32::MAX),
                    u32::try_from(*end).unwrap_or(u32::MAX),
                )
            })
            .collect();
        self.by_path.insert(path.clone(), index);
        self.files.push(FileData {
            module: module_name(&path),
            path,
            text,
            is_stdlib,
            chunks,
            items,
            imports: BTreeMap::new(),
            decls,
        });
        index
    }

    /// Loads a file by path, returning its index; reports read errors at `from`.
    pub(super) fn load(&mut self, path: &str, from: Option<Span>) -> Option<usize> {
        if let Some(index) = self.by_path.get(path) {
            // A file that could not be read was reported once already.
            return (!self.unreadable.contains(index)).then_some(*index);
        }
        if let Some(name) = path
            .strip_prefix(STD_PREFIX)
            .and_then(|p| p.strip_suffix(".egress"))
        {
            if let Some(text) = stdlib_source(name) {
                return Some(self.add_file(path.to_string(), text.to_string(), true));
            }
        }
        match self.source.read(path) {
            Ok(text) => Some(self.add_file(path.to_string(), text, false)),
            Err(error) => {
                // A root that cannot be read still gets a file entry, so the diagnostic
                // has somewhere to point.
                let span = match from {
                    Some(span) => span,
                    None => {
                        let index = self.add_file(path.to_string(), String::new(), false);
                        self.unreadable.insert(index);
                        Span::new(Self::file_id(index), 0, 0)
                    }
                };
                let (code, message, help) = match error {
                    ReadError::NotFound => (
                        "E0013",
                        format!("cannot find `{path}`"),
                        "check the path; imports are relative to the importing file".to_string(),
                    ),
                    ReadError::NotUtf8 => (
                        "E0004",
                        format!("`{path}` is not valid UTF-8 text"),
                        "policy files must be UTF-8 text".to_string(),
                    ),
                    ReadError::TooLarge(size) => (
                        "E0004",
                        format!("`{path}` is {size} bytes, over the limit"),
                        "split the policy into smaller modules".to_string(),
                    ),
                    ReadError::Io(why) => (
                        "E0013",
                        format!("cannot read `{path}`: {why}"),
                        "check the file's permissions".to_string(),
                    ),
                };
                self.diagnostics.push(
                    Diagnostic::error(code, span, message)
                        .with_label("cannot load this file")
                        .with_help(help),
                );
                None
            }
        }
    }

    pub(crate) fn load_roots(&mut self, roots: &[String]) {
        let mut queue: Vec<usize> = Vec::new();
        for root in roots {
            if let Some(index) = self.load(root, None) {
                queue.push(index);
            }
        }
        let mut done = BTreeSet::new();
        while let Some(index) = queue.pop() {
            if !done.insert(index) {
                continue;
            }
            let imports: Vec<ast::Import> = self
                .files
                .get(index)
                .map(|f| {
                    f.items
                        .iter()
                        .filter_map(|held| match held {
                            Held::Whole(item) => match &item.kind {
                                ItemKind::Import(imp) => Some(imp.clone()),
                                _ => None,
                            },
                            Held::Head(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for import in imports {
                if let Some(target) = self.resolve_import(index, &import) {
                    queue.push(target);
                }
            }
        }
        self.report_cycles();
    }

    pub(super) fn resolve_import(&mut self, index: usize, import: &ast::Import) -> Option<usize> {
        let resolved = self.resolve_import_target(index, import);
        if resolved.is_none() {
            // Record the alias anyway, so uses of it are not reported a second time.
            let alias =
                import
                    .alias
                    .as_ref()
                    .map(|a| a.text.clone())
                    .or_else(|| match &import.path {
                        ImportPath::Module(ident) => {
                            ident.text.rsplit('.').next().map(str::to_string)
                        }
                        ImportPath::File(lit) => lit
                            .value
                            .rsplit('/')
                            .next()
                            .map(|s| s.trim_end_matches(".egress").replace(['.', ' '], "_")),
                    });
            let span = import
                .alias
                .as_ref()
                .map(|a| a.span)
                .unwrap_or(match &import.path {
                    ImportPath::Module(ident) => ident.span,
                    ImportPath::File(lit) => lit.span,
                });
            if let (Some(alias), Some(file)) = (alias, self.files.get_mut(index)) {
                file.imports.entry(alias).or_insert(ImportInfo {
                    target: None,
                    span,
                    used: AtomicBool::new(true),
                });
            }
        }
        resolved
    }

    pub(super) fn resolve_import_target(
        &mut self,
        index: usize,
        import: &ast::Import,
    ) -> Option<usize> {
        let (importer_path, importer_std) = {
            let file = self.files.get(index)?;
            (file.path.clone(), file.is_stdlib)
        };
        let (path, default_alias, span) = match &import.path {
            ImportPath::Module(ident) => {
                let text = ident.text.as_str();
                let Some(name) = text.strip_prefix("std.") else {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0013",
                            ident.span,
                            format!("there is no module `{text}`"),
                        )
                        .with_label("unknown module")
                        .with_help(format!(
                            "stdlib modules are {}; import a project file by path: `import \"file.egress\" as name`",
                            stdlib_list()
                        )),
                    );
                    return None;
                };
                if stdlib_source(name).is_none() {
                    let mut d = Diagnostic::error(
                        "E0013",
                        ident.span,
                        format!("the stdlib has no module `{name}`"),
                    )
                    .with_label("unknown stdlib module")
                    .with_help(format!("stdlib modules are {}", stdlib_list()));
                    let names: Vec<String> = crate::stdlib::MODULES
                        .iter()
                        .map(|(n, _)| format!("std.{n}"))
                        .collect();
                    if let Some(best) =
                        crate::suggest::closest(text, names.iter().map(|s| s.as_str()))
                    {
                        d = d.with_suggestion(
                            ident.span,
                            best.clone(),
                            format!("did you mean `{best}`?"),
                        );
                    }
                    self.diagnostics.push(d);
                    return None;
                }
                (
                    format!("{STD_PREFIX}{name}.egress"),
                    name.rsplit('.').next().unwrap_or(name).to_string(),
                    ident.span,
                )
            }
            ImportPath::File(lit) => {
                if importer_std {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0015",
                            lit.span,
                            "stdlib modules cannot import project files",
                        )
                        .with_label("not allowed here")
                        .with_help("import other stdlib modules as `import std.NAME`"),
                    );
                    return None;
                }
                let Some(path) = join_path(parent_dir(&importer_path), &lit.value) else {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0015",
                            lit.span,
                            format!("`{}` is outside the project root", lit.value),
                        )
                        .with_label("refused: leaves the project root")
                        .with_help("imports are relative paths inside the project; move the shared file into the project or run egc from a directory that contains both"),
                    );
                    return None;
                };
                if !path.ends_with(".egress") {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0013",
                            lit.span,
                            format!("`{}` is not an `.egress` file", lit.value),
                        )
                        .with_label("not a policy file")
                        .with_help("import policy modules ending in `.egress`"),
                    );
                    return None;
                }
                let stem = path
                    .rsplit('/')
                    .next()
                    .unwrap_or(&path)
                    .trim_end_matches(".egress")
                    .replace(['.', ' '], "_");
                (path, stem, lit.span)
            }
        };
        let alias_ident = import.alias.clone();
        let alias = alias_ident
            .as_ref()
            .map(|a| a.text.clone())
            .unwrap_or(default_alias);
        let target = self.load(&path, Some(span));
        if let Some(target) = target {
            self.edges.push((index, target, span));
        }
        let alias_span = alias_ident.as_ref().map(|a| a.span).unwrap_or(span);
        if let Some(file) = self.files.get_mut(index) {
            if let Some(previous) = file.imports.get(&alias) {
                let previous_span = previous.span;
                self.diagnostics.push(
                    Diagnostic::error(
                        "E0011",
                        alias_span,
                        format!("the module name `{alias}` is imported twice"),
                    )
                    .with_label("second import")
                    .with_secondary(previous_span, "first imported here")
                    .with_help("give one of them another name with `as`"),
                );
            } else {
                file.imports.insert(
                    alias,
                    ImportInfo {
                        target,
                        span: alias_span,
                        used: AtomicBool::new(false),
                    },
                );
            }
        }
        target
    }

    pub(super) fn report_cycles(&mut self) {
        // Depth-first search for back edges.
        let n = self.files.len();
        let mut adjacency: Vec<Vec<(usize, Span)>> = vec![Vec::new(); n];
        for (from, to, span) in &self.edges {
            if let Some(list) = adjacency.get_mut(*from) {
                list.push((*to, *span));
            }
        }
        let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
        let mut reported = BTreeSet::new();
        for start in 0..n {
            if state.get(start) != Some(&0) {
                continue;
            }
            // Iterative DFS: stack of (node, next edge index); path of nodes.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            if let Some(s) = state.get_mut(start) {
                *s = 1;
            }
            while let Some((node, edge)) = stack.last().copied() {
                let next = adjacency.get(node).and_then(|l| l.get(edge)).copied();
                match next {
                    Some((to, span)) => {
                        if let Some(top) = stack.last_mut() {
                            top.1 += 1;
                        }
                        match state.get(to).copied() {
                            Some(0) => {
                                if let Some(s) = state.get_mut(to) {
                                    *s = 1;
                                }
                                stack.push((to, 0));
                            }
                            Some(1) if reported.insert(span) => {
                                let position =
                                    stack.iter().position(|(f, _)| *f == to).unwrap_or(0);
                                let mut chain: Vec<String> = stack
                                    .get(position..)
                                    .unwrap_or(&[])
                                    .iter()
                                    .filter_map(|(f, _)| self.files.get(*f).map(|x| x.path.clone()))
                                    .collect();
                                if let Some(first) = self.files.get(to) {
                                    chain.push(first.path.clone());
                                }
                                self.diagnostics.push(
                                        Diagnostic::error(
                                            "E0014",
                                            span,
                                            format!("import cycle: {}", chain.join(" -> ")),
                                        )
                                        .with_label("this import closes the cycle")
                                        .with_help("move the shared declarations into a module that both import"),
                                    );
                            }
                            _ => {}
                        }
                    }
                    None => {
                        if let Some(s) = state.get_mut(node) {
                            *s = 2;
                        }
                        stack.pop();
                    }
                }
            }
        }
    }
}

pub(super) fn stdlib_source(name: &str) -> Option<&'static str> {
    crate::stdlib::MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// Normalises `dir/relative`; `None` if it leaves the root.
pub(super) fn join_path(dir: &str, relative: &str) -> Option<String> {
    if relative.starts_with('/') || relative.contains('\\') || relative.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

pub(super) fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

pub(super) fn module_name(path: &str) -> String {
    if let Some(rest) = path.strip_prefix(STD_PREFIX) {
        return format!("std.{}", rest.trim_end_matches(".egress"));
    }
    path.trim_end_matches(".egress").replace('/', ".")
}

pub(super) fn stdlib_list() -> String {
    crate::stdlib::MODULES
        .iter()
        .map(|(n, _)| format!("`std.{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
