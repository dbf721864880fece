//! The checker: load files and imports, collect declarations, resolve names, validate
//! values and build the [`CheckedPolicy`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use egress_syntax::ast::{self, DestExpr, Ident, ImportPath, ItemKind};
use egress_syntax::{diagnostic::sort_diagnostics, Diagnostic, FileId, Span};

use crate::model::*;
use crate::values;
use crate::{CheckResult, FileSource, LoadedFile, ReadError, Reference, Symbol};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Data,
    Destination,
    Capability,
    Agent,
    Workflow,
    Exception,
    Authority,
    Zone,
    Assert,
    Syscalls,
    CapSet,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Destination => "destination",
            Kind::Capability => "capability",
            Kind::Agent => "agent",
            Kind::Workflow => "workflow",
            Kind::Exception => "exception",
            Kind::Authority => "authority",
            Kind::Zone => "zone",
            Kind::Assert => "assert",
            Kind::Syscalls => "syscalls",
            Kind::CapSet => "capset",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Data => "data class",
            Kind::Assert => "assertion",
            Kind::Syscalls => "syscall group",
            Kind::CapSet => "capability set",
            other => other.name(),
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::Data => "a data class",
            Kind::Destination => "a destination",
            Kind::Capability => "a capability",
            Kind::Agent => "an agent",
            Kind::Workflow => "a workflow",
            Kind::Exception => "an exception",
            Kind::Authority => "an authority",
            Kind::Zone => "a zone",
            Kind::Assert => "an assertion",
            Kind::Syscalls => "a syscall group",
            Kind::CapSet => "a capability set",
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Decl {
    kind: Kind,
    index: u32,
    name_span: Span,
}

#[derive(Clone, Debug)]
struct ImportInfo {
    target: Option<usize>,
    span: Span,
    used: bool,
}

struct FileData {
    path: String,
    module: String,
    text: Arc<str>,
    is_stdlib: bool,
    ast: ast::SourceAst,
    imports: BTreeMap<String, ImportInfo>,
    decls: BTreeMap<String, Decl>,
}

pub(crate) struct Checker<'s> {
    source: &'s dyn FileSource,
    files: Vec<FileData>,
    by_path: BTreeMap<String, usize>,
    /// Files that could not be read (kept so diagnostics can point at them).
    unreadable: BTreeSet<usize>,
    diagnostics: Vec<Diagnostic>,
    references: Vec<Reference>,
    symbols: Vec<Symbol>,
    /// Import edges (from, to, span of the import).
    edges: Vec<(usize, usize, Span)>,
    counts: BTreeMap<Kind, u32>,
    // The model under construction.
    data_classes: Vec<DataClass>,
    destinations: Vec<Destination>,
    capabilities: Vec<Capability>,
    agents: Vec<Agent>,
    workflows: Vec<Workflow>,
    exceptions: Vec<Exception>,
    authorities: Vec<Authority>,
    zones: Vec<Zone>,
    syscall_groups: Vec<SyscallGroup>,
    cap_sets: Vec<CapSet>,
    asserts: Vec<Assertion>,
    /// Destinations used as allowlists, with the span of one use.
    allowlist_uses: BTreeMap<DestId, Span>,
}

const STD_PREFIX: &str = "std/";

fn stdlib_source(name: &str) -> Option<&'static str> {
    crate::stdlib::MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// Normalises `dir/relative`; `None` if it leaves the root.
fn join_path(dir: &str, relative: &str) -> Option<String> {
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

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn module_name(path: &str) -> String {
    if let Some(rest) = path.strip_prefix(STD_PREFIX) {
        return format!("std.{}", rest.trim_end_matches(".egress"));
    }
    path.trim_end_matches(".egress").replace('/', ".")
}

impl<'s> Checker<'s> {
    pub(crate) fn new(source: &'s dyn FileSource) -> Self {
        Checker {
            source,
            files: Vec::new(),
            by_path: BTreeMap::new(),
            unreadable: BTreeSet::new(),
            diagnostics: Vec::new(),
            references: Vec::new(),
            symbols: Vec::new(),
            edges: Vec::new(),
            counts: BTreeMap::new(),
            data_classes: Vec::new(),
            destinations: Vec::new(),
            capabilities: Vec::new(),
            agents: Vec::new(),
            workflows: Vec::new(),
            exceptions: Vec::new(),
            authorities: Vec::new(),
            zones: Vec::new(),
            syscall_groups: Vec::new(),
            cap_sets: Vec::new(),
            asserts: Vec::new(),
            allowlist_uses: BTreeMap::new(),
        }
    }

    fn file_id(index: usize) -> FileId {
        FileId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    // ---------------------------------------------------------------------------------
    // Loading

    fn add_file(&mut self, path: String, text: String, is_stdlib: bool) -> usize {
        let index = self.files.len();
        let parsed = egress_syntax::parse(Self::file_id(index), &text);
        self.diagnostics.extend(parsed.diagnostics);
        self.by_path.insert(path.clone(), index);
        self.files.push(FileData {
            module: module_name(&path),
            path,
            text: Arc::from(text),
            is_stdlib,
            ast: parsed.ast,
            imports: BTreeMap::new(),
            decls: BTreeMap::new(),
        });
        index
    }

    /// Loads a file by path, returning its index; reports read errors at `from`.
    fn load(&mut self, path: &str, from: Option<Span>) -> Option<usize> {
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
                    f.ast
                        .items
                        .iter()
                        .filter_map(|i| match &i.kind {
                            ItemKind::Import(imp) => Some(imp.clone()),
                            _ => None,
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

    fn resolve_import(&mut self, index: usize, import: &ast::Import) -> Option<usize> {
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
                    used: true,
                });
            }
        }
        resolved
    }

    fn resolve_import_target(&mut self, index: usize, import: &ast::Import) -> Option<usize> {
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
                        used: false,
                    },
                );
            }
        }
        target
    }

    fn report_cycles(&mut self) {
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

    // ---------------------------------------------------------------------------------
    // Collecting declarations

    fn next_index(&mut self, kind: Kind) -> u32 {
        let counter = self.counts.entry(kind).or_insert(0);
        let index = *counter;
        *counter += 1;
        index
    }

    fn declare(
        &mut self,
        file: usize,
        kind: Kind,
        ident: &Ident,
        item_span: Span,
        doc: Option<String>,
    ) {
        let index = self.next_index(kind);
        let module = self
            .files
            .get(file)
            .map(|f| f.module.clone())
            .unwrap_or_default();
        self.symbols.push(Symbol {
            kind: kind.name(),
            local: ident.text.clone(),
            qualified: format!("{module}.{}", ident.text),
            name_span: ident.span,
            item_span,
            doc,
        });
        let Some(data) = self.files.get_mut(file) else {
            return;
        };
        if let Some(previous) = data.decls.get(&ident.text) {
            let previous = *previous;
            self.diagnostics.push(
                Diagnostic::error(
                    "E0011",
                    ident.span,
                    format!("`{}` is declared twice in this module", ident.text),
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
        if let Some(import) = data.imports.get(&ident.text) {
            let span = import.span;
            self.diagnostics.push(
                Diagnostic::error(
                    "E0011",
                    ident.span,
                    format!("`{}` is already the name of an imported module", ident.text),
                )
                .with_label("clashes with an import")
                .with_secondary(span, "imported here")
                .with_help("rename the declaration or import the module `as` another name"),
            );
            return;
        }
        data.decls.insert(
            ident.text.clone(),
            Decl {
                kind,
                index,
                name_span: ident.span,
            },
        );
    }

    pub(crate) fn collect(&mut self) {
        for file in 0..self.files.len() {
            let items = match self.files.get(file) {
                Some(f) => f.ast.items.clone(),
                None => continue,
            };
            for item in &items {
                let kind = match &item.kind {
                    ItemKind::Import(_) => continue,
                    ItemKind::Data(d) => {
                        for name in &d.names {
                            self.declare(file, Kind::Data, name, item.span, item.doc.clone());
                        }
                        continue;
                    }
                    ItemKind::Destination(_) => Kind::Destination,
                    ItemKind::Capability(_) => Kind::Capability,
                    ItemKind::Agent(_) => Kind::Agent,
                    ItemKind::Workflow(_) => Kind::Workflow,
                    ItemKind::Exception(_) => Kind::Exception,
                    ItemKind::Authority(_) => Kind::Authority,
                    ItemKind::Zone(_) => Kind::Zone,
                    ItemKind::Assert(_) => Kind::Assert,
                    ItemKind::Syscalls(_) => Kind::Syscalls,
                    ItemKind::CapSet(_) => Kind::CapSet,
                };
                if let Some(name) = item.name() {
                    self.declare(file, kind, name, item.span, item.doc.clone());
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Name resolution

    fn qualified(&self, file: usize, local: &str) -> String {
        let module = self
            .files
            .get(file)
            .map(|f| f.module.as_str())
            .unwrap_or("");
        format!("{module}.{local}")
    }

    fn name(&self, file: usize, ident: &Ident) -> Name {
        Name {
            local: ident.text.clone(),
            qualified: self.qualified(file, &ident.text),
            span: ident.span,
        }
    }

    /// Resolves `ident` (as used in `file`) to a declaration of kind `want`.
    fn resolve(&mut self, file: usize, ident: &Ident, want: Kind) -> Option<u32> {
        let text = ident.text.as_str();
        let (target_file, local) = match text.split_once('.') {
            Some((alias, rest)) => {
                let import = self
                    .files
                    .get_mut(file)
                    .and_then(|f| f.imports.get_mut(alias));
                match import {
                    Some(info) => {
                        info.used = true;
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
                let qualified = self.qualified(target_file, local);
                self.references.push(Reference {
                    span: ident.span,
                    target: decl.name_span,
                    kind: want.name(),
                    qualified,
                });
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

    fn unknown_name(
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
                f.decls
                    .iter()
                    .filter(|(_, d)| d.kind == want)
                    .map(|(n, _)| format!("{prefix}{n}")),
            );
        }
        if target_file == file {
            if let Some(f) = self.files.get(file) {
                for (alias, info) in &f.imports {
                    if let Some(target) = info.target.and_then(|t| self.files.get(t)) {
                        candidates.extend(
                            target
                                .decls
                                .iter()
                                .filter(|(_, d)| d.kind == want)
                                .map(|(n, _)| format!("{alias}.{n}")),
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
    fn imported_qualified(&self, file: usize, local: &str, want: Kind) -> Option<String> {
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

    fn declared_elsewhere(&self, file: usize, local: &str, want: Kind) -> Option<String> {
        self.files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != file)
            .find(|(_, f)| f.decls.get(local).is_some_and(|d| d.kind == want))
            .map(|(_, f)| f.path.clone())
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn duplicate_entry(&mut self, span: Span, first: Span, what: &str) {
        self.error(
            Diagnostic::error("E0016", span, format!("`{what}` is given more than once"))
                .with_label("repeated entry")
                .with_secondary(first, "first given here")
                .with_help(format!("give `{what}` once")),
        );
    }

    fn missing_entry(&mut self, span: Span, item: &str, what: &str, help: &str) {
        self.error(
            Diagnostic::error("E0017", span, format!("{item} is missing `{what}`"))
                .with_label(format!("needs `{what}`"))
                .with_help(help.to_string()),
        );
    }

    // ---------------------------------------------------------------------------------
    // Building the model

    pub(crate) fn build(&mut self) {
        // Named destinations first, so their ids match their collection order.
        let mut pending: Vec<(usize, ast::Item)> = Vec::new();
        for (index, file) in self.files.iter().enumerate() {
            for item in &file.ast.items {
                pending.push((index, item.clone()));
            }
        }
        for kind in [
            Kind::Data,
            Kind::Destination,
            Kind::Syscalls,
            Kind::CapSet,
            Kind::Authority,
            Kind::Capability,
            Kind::Agent,
            Kind::Workflow,
            Kind::Exception,
            Kind::Zone,
            Kind::Assert,
        ] {
            for (file, item) in &pending {
                self.build_item(*file, item, kind);
            }
        }
        self.check_workflow_limits();
        self.check_allowlists();
        self.check_unused_imports();
    }

    fn build_item(&mut self, file: usize, item: &ast::Item, kind: Kind) {
        let doc = item.doc.clone();
        match (&item.kind, kind) {
            (ItemKind::Data(d), Kind::Data) => {
                for name in &d.names {
                    let id =
                        DataClassId(u32::try_from(self.data_classes.len()).unwrap_or(u32::MAX));
                    self.data_classes.push(DataClass {
                        id,
                        name: self.name(file, name),
                        span: item.span,
                        doc: doc.clone(),
                    });
                }
            }
            (ItemKind::Destination(d), Kind::Destination) => {
                let name = self.name(file, &d.name);
                self.destination(name, &d.body, item.span, doc, false);
            }
            (ItemKind::Syscalls(d), Kind::Syscalls) => self.syscall_group(file, d, item.span, doc),
            (ItemKind::CapSet(d), Kind::CapSet) => self.cap_set(file, d, item.span, doc),
            (ItemKind::Authority(d), Kind::Authority) => self.authority(file, d, item.span, doc),
            (ItemKind::Capability(d), Kind::Capability) => self.capability(file, d, item.span, doc),
            (ItemKind::Agent(d), Kind::Agent) => self.agent(file, d, item.span, doc),
            (ItemKind::Workflow(d), Kind::Workflow) => self.workflow(file, d, item.span, doc),
            (ItemKind::Exception(d), Kind::Exception) => self.exception(file, d, item.span, doc),
            (ItemKind::Zone(d), Kind::Zone) => self.zone(file, d, item.span, doc),
            (ItemKind::Assert(d), Kind::Assert) => self.assertion(file, d, item.span, doc),
            _ => {}
        }
    }

    fn destination(
        &mut self,
        name: Name,
        body: &ast::DestBody,
        span: Span,
        doc: Option<String>,
        inline: bool,
    ) -> DestId {
        let mut endpoints = Vec::new();
        let mut ports = Vec::new();
        let mut protocols = Vec::new();
        let mut saw_ports = false;
        let mut sni_optional: Option<Span> = None;
        for entry in &body.entries {
            match entry {
                ast::DestEntry::SniOptional { span } => match sni_optional {
                    Some(first) => self.duplicate_entry(*span, first, "sni optional"),
                    None => sni_optional = Some(*span),
                },
                ast::DestEntry::Hosts { hosts, .. } => {
                    for host in hosts {
                        match values::host_pattern(host) {
                            Ok(pattern) => endpoints.push(Endpoint {
                                kind: EndpointKind::Host(pattern),
                                span: host.span,
                            }),
                            Err(d) => self.error(d),
                        }
                    }
                }
                ast::DestEntry::Cidr {
                    span,
                    network,
                    except,
                } => {
                    let Ok(net) = values::cidr(network).map_err(|d| self.error(d)) else {
                        continue;
                    };
                    let mut excluded = Vec::new();
                    for lit in except {
                        let Ok(ex) = values::cidr(lit).map_err(|d| self.error(d)) else {
                            continue;
                        };
                        let same_family = matches!(
                            (net, ex),
                            (ipnet::IpNet::V4(_), ipnet::IpNet::V4(_))
                                | (ipnet::IpNet::V6(_), ipnet::IpNet::V6(_))
                        );
                        if !same_family {
                            self.error(
                                Diagnostic::error(
                                    "E0023",
                                    lit.span,
                                    format!("`{ex}` and `{net}` are of different IP families"),
                                )
                                .with_label("other family")
                                .with_secondary(network.span, "the network")
                                .with_help(
                                    "IPv4 and IPv6 never overlap: put IPv6 in its own `cidr` entry",
                                ),
                            );
                            continue;
                        }
                        if !net.contains(&ex) {
                            self.error(
                                Diagnostic::error(
                                    "E0024",
                                    lit.span,
                                    format!("the exclusion `{ex}` is not inside `{net}`"),
                                )
                                .with_label("excludes nothing of the network")
                                .with_secondary(network.span, "the network")
                                .with_help("remove the exclusion or fix its address"),
                            );
                            continue;
                        }
                        if ex == net {
                            self.error(
                                Diagnostic::error(
                                    "E0024",
                                    lit.span,
                                    format!("the exclusion `{ex}` removes the whole network"),
                                )
                                .with_label("nothing is left")
                                .with_help("remove the `cidr` entry instead"),
                            );
                            continue;
                        }
                        excluded.push(ex);
                    }
                    excluded.sort();
                    excluded.dedup();
                    endpoints.push(Endpoint {
                        kind: EndpointKind::Cidr(CidrSet {
                            network: net,
                            except: excluded,
                        }),
                        span: *span,
                    });
                }
                ast::DestEntry::Workload(w) => {
                    if let Some(selector) = self.selector(w) {
                        endpoints.push(Endpoint {
                            kind: EndpointKind::Workload(selector),
                            span: w.span,
                        });
                    }
                }
                ast::DestEntry::Ports { ports: lits, .. } => {
                    saw_ports = true;
                    for lit in lits {
                        match values::port(lit) {
                            Ok(range) => ports.push(range),
                            Err(d) => self.error(d),
                        }
                    }
                }
                ast::DestEntry::Protocols { names, .. } => {
                    for ident in names {
                        match ident.text.to_ascii_lowercase().as_str() {
                            "tcp" => protocols.push(Protocol::Tcp),
                            "udp" => protocols.push(Protocol::Udp),
                            other => {
                                let mut d = Diagnostic::error(
                                    "E0033",
                                    ident.span,
                                    format!("unknown protocol `{other}`"),
                                )
                                .with_label("not a protocol")
                                .with_help("the protocols are `tcp` and `udp`");
                                if let Some(best) =
                                    crate::suggest::closest(other, ["tcp", "udp"].into_iter())
                                {
                                    d = d.with_suggestion(
                                        ident.span,
                                        best.clone(),
                                        format!("replace with `{best}`"),
                                    );
                                }
                                self.error(d);
                            }
                        }
                    }
                }
            }
        }
        let has_endpoint_entries = body.entries.iter().any(|e| {
            matches!(
                e,
                ast::DestEntry::Hosts { .. }
                    | ast::DestEntry::Cidr { .. }
                    | ast::DestEntry::Workload(_)
            )
        });
        let name_span = name.span;
        let has_hosts = body
            .entries
            .iter()
            .any(|e| matches!(e, ast::DestEntry::Hosts { .. }));
        if let (Some(sni_span), true, false) = (sni_optional, has_endpoint_entries, has_hosts) {
            self.error(
                Diagnostic::warning(
                    "W0005",
                    sni_span,
                    "`sni optional` on a destination without host names",
                )
                .with_label("has no effect here")
                .with_help(
                    "`sni optional` relaxes the run-time name check of `host` destinations; \
                     connections to `cidr` and `workload` endpoints are allowed by address \
                     alone, so remove it",
                ),
            );
        }
        if !has_endpoint_entries {
            let what = if inline {
                "this destination".to_string()
            } else {
                format!("destination `{}`", name.local)
            };
            self.error(
                Diagnostic::error("E0017", if inline { body.span } else { name_span }, format!("{what} names no host, cidr or workload"))
                    .with_label("reaches nothing")
                    .with_help("say what it reaches: `host \"api.example.com\"`, `cidr 192.0.2.0/24` or `workload namespace \"ns\"`"),
            );
        }
        if !saw_ports {
            self.error(
                Diagnostic::error(
                    "E0029",
                    if inline { body.span } else { name_span },
                    "this destination names no ports",
                )
                .with_label("no `port` entry")
                .with_help(
                    "default deny covers ports too: add `port 443` (or the ports actually needed)",
                ),
            );
        }
        ports.sort();
        let ports = merge_ports(ports);
        protocols.sort();
        protocols.dedup();
        if protocols.is_empty() {
            protocols.push(Protocol::Tcp);
        }
        let id = DestId(u32::try_from(self.destinations.len()).unwrap_or(u32::MAX));
        self.destinations.push(Destination {
            id,
            name,
            span,
            doc,
            inline,
            endpoints,
            ports,
            protocols,
            sni_optional: sni_optional.is_some(),
        });
        id
    }

    fn selector(&mut self, w: &ast::WorkloadAst) -> Option<WorkloadSelector> {
        let mut ok = true;
        let namespace = match values::namespace(&w.namespace) {
            Ok(n) => n,
            Err(d) => {
                self.error(d);
                ok = false;
                String::new()
            }
        };
        let mut labels = BTreeMap::new();
        let mut first: BTreeMap<String, Span> = BTreeMap::new();
        for (key, value) in &w.labels {
            let (Ok(k), Ok(v)) = (values::label_key(key), values::label_value(value)) else {
                if let Err(d) = values::label_key(key) {
                    self.error(d);
                }
                if let Err(d) = values::label_value(value) {
                    self.error(d);
                }
                ok = false;
                continue;
            };
            if let Some(previous) = first.get(&k) {
                let previous = *previous;
                self.error(
                    Diagnostic::error(
                        "E0016",
                        key.span,
                        format!("the label `{k}` is given twice in this selector"),
                    )
                    .with_label("repeated label")
                    .with_secondary(previous, "first given here")
                    .with_help("a selector gives each label key once"),
                );
                ok = false;
                continue;
            }
            first.insert(k.clone(), key.span);
            labels.insert(k, v);
        }
        ok.then_some(WorkloadSelector { namespace, labels })
    }

    fn dest_expr(&mut self, file: usize, expr: &DestExpr, owner: &str) -> Option<(DestId, Span)> {
        match expr {
            DestExpr::Named(ident) => self
                .resolve(file, ident, Kind::Destination)
                .map(|i| (DestId(i), ident.span)),
            DestExpr::Inline(body) => {
                let local = format!("{owner}.inline{}", self.destinations.len());
                let name = Name {
                    qualified: self.qualified(file, &local),
                    local,
                    span: body.span,
                };
                Some((
                    self.destination(name, body, body.span, None, true),
                    body.span,
                ))
            }
        }
    }

    fn syscall_group(
        &mut self,
        file: usize,
        d: &ast::NameSetDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut syscalls = Vec::new();
        for member in &d.members {
            if crate::syscalls::SYSCALLS
                .binary_search(&member.text.as_str())
                .is_ok()
            {
                syscalls.push(member.text.clone());
            } else {
                let mut diag = Diagnostic::error(
                    "E0041",
                    member.span,
                    format!("`{}` is not a Linux syscall", member.text),
                )
                .with_label("unknown syscall")
                .with_help(
                    "use the kernel's syscall names as in `asm/unistd.h` (x86_64 and aarch64)",
                );
                if let Some(best) =
                    crate::suggest::closest(&member.text, crate::syscalls::SYSCALLS.iter().copied())
                {
                    diag = diag.with_suggestion(
                        member.span,
                        best.clone(),
                        format!("did you mean `{best}`?"),
                    );
                }
                self.error(diag);
            }
        }
        syscalls.sort();
        syscalls.dedup();
        let id = SyscallGroupId(u32::try_from(self.syscall_groups.len()).unwrap_or(u32::MAX));
        self.syscall_groups.push(SyscallGroup {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            syscalls,
        });
    }

    fn linux_cap(&mut self, ident: &Ident) -> Option<LinuxCap> {
        let cap = LinuxCap::from_name(&ident.text);
        if cap.is_none() {
            let mut diag = Diagnostic::error(
                "E0034",
                ident.span,
                format!("`{}` is not a Linux capability", ident.text),
            )
            .with_label("unknown capability")
            .with_help(
                "Linux capabilities are named as in capabilities(7), e.g. `CAP_NET_BIND_SERVICE`",
            );
            if let Some(best) = crate::suggest::closest(&ident.text, LINUX_CAPS.iter().copied()) {
                diag = diag.with_suggestion(
                    ident.span,
                    best.clone(),
                    format!("did you mean `{best}`?"),
                );
            }
            self.error(diag);
        }
        cap
    }

    fn cap_set(&mut self, file: usize, d: &ast::NameSetDecl, span: Span, doc: Option<String>) {
        let mut caps = Vec::new();
        for member in &d.members {
            if let Some(cap) = self.linux_cap(member) {
                caps.push(cap);
            }
        }
        caps.sort();
        caps.dedup();
        let id = CapSetId(u32::try_from(self.cap_sets.len()).unwrap_or(u32::MAX));
        self.cap_sets.push(CapSet {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            caps,
        });
    }

    fn authority(&mut self, file: usize, d: &ast::AuthorityDecl, span: Span, doc: Option<String>) {
        let mut key: Option<([u8; 32], Span)> = None;
        let mut max_ttl: Option<(u64, Span)> = None;
        let mut key_seen: Option<Span> = None;
        let mut ttl_seen: Option<Span> = None;
        for entry in &d.entries {
            match entry {
                ast::AuthorityEntry::Key { span, value } => {
                    if let Some(first) = key_seen {
                        self.duplicate_entry(*span, first, "key");
                        continue;
                    }
                    key_seen = Some(*span);
                    match values::ed25519_key(value) {
                        Ok(k) => key = Some((k, *span)),
                        Err(diag) => self.error(diag),
                    }
                }
                ast::AuthorityEntry::MaxTtl { span, value } => {
                    if let Some(first) = ttl_seen {
                        self.duplicate_entry(*span, first, "max_ttl");
                        continue;
                    }
                    ttl_seen = Some(*span);
                    match values::duration(value) {
                        Ok(secs) => {
                            if secs > MAX_EXCEPTION_TTL_SECS {
                                self.error(ttl_over(
                                    value.span,
                                    secs,
                                    MAX_EXCEPTION_TTL_SECS,
                                    "the language's ceiling",
                                ));
                            }
                            max_ttl = Some((secs, *span));
                        }
                        Err(diag) => self.error(diag),
                    }
                }
            }
        }
        if key_seen.is_none() {
            self.missing_entry(
                d.name.span,
                "this authority",
                "key",
                "add `key \"ed25519:<base64 public key>\"`; `egc exception keygen` makes one",
            );
        }
        if ttl_seen.is_none() {
            self.missing_entry(
                d.name.span,
                "this authority",
                "max_ttl",
                "add the longest token lifetime it may sign, e.g. `max_ttl 1h`",
            );
        }
        let id = AuthorityId(u32::try_from(self.authorities.len()).unwrap_or(u32::MAX));
        self.authorities.push(Authority {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            key: key.map(|(k, _)| k).unwrap_or([0; 32]),
            max_ttl_secs: max_ttl.map(|(s, _)| s).unwrap_or(0),
        });
    }

    fn capability(
        &mut self,
        file: usize,
        d: &ast::CapabilityDecl,
        span: Span,
        doc: Option<String>,
    ) {
        let mut connects = Vec::new();
        let mut syscall_groups = Vec::new();
        let mut linux_caps = Vec::new();
        let mut workflows = Vec::new();
        let mut unix_sockets: Vec<UnixSocket> = Vec::new();
        let mut justified_by_sbom: Option<Span> = None;
        for entry in &d.entries {
            if entry.kind == ast::CapEntryKind::JustifiedBySbom {
                // Saying it twice says nothing more; the first is kept.
                justified_by_sbom.get_or_insert(entry.span);
            }
            for lit in &entry.paths {
                match values::unix_socket_path(lit) {
                    Ok(path) => {
                        if !unix_sockets.iter().any(|u| u.path == path) {
                            unix_sockets.push(UnixSocket {
                                path,
                                span: lit.span,
                            });
                        }
                    }
                    Err(diag) => self.error(diag),
                }
            }
            for ident in &entry.names {
                match entry.kind {
                    ast::CapEntryKind::Connect => {
                        if let Some(i) = self.resolve(file, ident, Kind::Destination) {
                            let dest = DestId(i);
                            self.allowlist_uses.entry(dest).or_insert(ident.span);
                            connects.push(Connect {
                                dest,
                                span: ident.span,
                            });
                        }
                    }
                    ast::CapEntryKind::Syscalls => {
                        if let Some(i) = self.resolve(file, ident, Kind::Syscalls) {
                            syscall_groups.push(SyscallGroupId(i));
                        }
                    }
                    ast::CapEntryKind::Grant => {
                        if ident.text.starts_with("CAP_") && !ident.text.contains('.') {
                            if let Some(cap) = self.linux_cap(ident) {
                                linux_caps.push(CapGrant {
                                    cap,
                                    span: ident.span,
                                    via: None,
                                });
                            }
                        } else if let Some(i) = self.resolve(file, ident, Kind::CapSet) {
                            let set = CapSetId(i);
                            let caps = self
                                .cap_sets
                                .get(set.index())
                                .map(|s| s.caps.clone())
                                .unwrap_or_default();
                            for cap in caps {
                                linux_caps.push(CapGrant {
                                    cap,
                                    span: ident.span,
                                    via: Some(set),
                                });
                            }
                        }
                    }
                    // A `unix` entry has paths, never names.
                    ast::CapEntryKind::Unix | ast::CapEntryKind::JustifiedBySbom => {}
                    ast::CapEntryKind::Workflows => {
                        // Workflows are built later; resolve the name now, the id is stable.
                        if let Some(i) = self.resolve(file, ident, Kind::Workflow) {
                            workflows.push(Ref {
                                id: WorkflowId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
            }
        }
        let id = CapId(u32::try_from(self.capabilities.len()).unwrap_or(u32::MAX));
        self.capabilities.push(Capability {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            connects,
            syscall_groups,
            linux_caps,
            workflows,
            unix_sockets,
            justified_by_sbom,
        });
    }

    fn agent(&mut self, file: usize, d: &ast::AgentDecl, span: Span, doc: Option<String>) {
        let mut identity = Identity::default();
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut capabilities = Vec::new();
        let mut handles = Vec::new();
        let mut invokes = Vec::new();
        for entry in &d.entries {
            let single = match entry {
                ast::AgentEntry::Workload(w) => Some(("workload", w.span)),
                ast::AgentEntry::Image { span, .. } => Some(("image", *span)),
                ast::AgentEntry::Cgroup { span, .. } => Some(("cgroup", *span)),
                ast::AgentEntry::Uid { span, .. } => Some(("uid", *span)),
                _ => None,
            };
            if let Some((what, span)) = single {
                if let Some(first) = seen.get(what) {
                    let first = *first;
                    self.duplicate_entry(span, first, what);
                    continue;
                }
                seen.insert(what, span);
            }
            match entry {
                ast::AgentEntry::Workload(w) => identity.workload = self.selector(w),
                ast::AgentEntry::Image { value, .. } => match values::image_digest(value) {
                    Ok(v) => identity.image = Some(v),
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Executable { value, .. } => match values::executable_digest(value)
                {
                    Ok(v) => {
                        if !identity.executables.contains(&v) {
                            identity.executables.push(v);
                            identity.executables.sort();
                        }
                    }
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Cgroup { value, .. } => match values::cgroup_path(value) {
                    Ok(v) => identity.cgroup = Some(v),
                    Err(diag) => self.error(diag),
                },
                ast::AgentEntry::Uid { value, .. } => {
                    match value.value.and_then(|v| u32::try_from(v).ok()) {
                        Some(v) => identity.uid = Some(v),
                        None => self.error(
                            Diagnostic::error(
                                "E0042",
                                value.span,
                                format!("`{}` is not a valid uid", value.text),
                            )
                            .with_label("out of range")
                            .with_help("a uid is a number from 0 to 4294967295"),
                        ),
                    }
                }
                ast::AgentEntry::Uses { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Capability) {
                            capabilities.push(Ref {
                                id: CapId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::AgentEntry::Handles { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Data) {
                            handles.push(Ref {
                                id: DataClassId(i),
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::AgentEntry::Invokes {
                    callees, passing, ..
                } => {
                    let passing = passing.as_ref().map(|names| {
                        names
                            .iter()
                            .filter_map(|ident| {
                                self.resolve(file, ident, Kind::Data).map(|i| Ref {
                                    id: DataClassId(i),
                                    span: ident.span,
                                })
                            })
                            .collect::<Vec<_>>()
                    });
                    for ident in callees {
                        if let Some(i) = self.resolve(file, ident, Kind::Agent) {
                            invokes.push(Invocation {
                                callee: AgentId(i),
                                span: ident.span,
                                passing: passing.clone(),
                            });
                        }
                    }
                }
            }
        }
        let id = AgentId(u32::try_from(self.agents.len()).unwrap_or(u32::MAX));
        self.agents.push(Agent {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            identity,
            capabilities,
            handles,
            invokes,
        });
    }

    fn workflow(&mut self, file: usize, d: &ast::WorkflowDecl, span: Span, doc: Option<String>) {
        let mut steps = Vec::new();
        for step in &d.steps {
            let Some(agent) = self.resolve(file, &step.agent, Kind::Agent).map(AgentId) else {
                // Resolve the rest anyway, to report every unknown name.
                match &step.action {
                    ast::StepActionAst::Uses(c) => {
                        self.resolve(file, c, Kind::Capability);
                    }
                    ast::StepActionAst::Invokes { callee, .. } => {
                        self.resolve(file, callee, Kind::Agent);
                    }
                }
                continue;
            };
            let agent_name = step.agent.text.clone();
            match &step.action {
                ast::StepActionAst::Uses(ident) => {
                    let Some(cap) = self.resolve(file, ident, Kind::Capability).map(CapId) else {
                        continue;
                    };
                    let has = self
                        .agents
                        .get(agent.index())
                        .is_some_and(|a| a.capabilities.iter().any(|c| c.id == cap));
                    if !has {
                        let agent_span = self.agents.get(agent.index()).map(|a| a.name.span);
                        let mut diag = Diagnostic::error(
                            "E0037",
                            ident.span,
                            format!(
                                "agent `{agent_name}` does not use capability `{}`",
                                ident.text
                            ),
                        )
                        .with_label("not one of the agent's capabilities")
                        .with_help(format!(
                            "add `uses {}` to agent `{agent_name}`, or use one of its capabilities",
                            ident.text
                        ));
                        if let Some(s) = agent_span {
                            diag = diag.with_secondary(s, "the agent is declared here");
                        }
                        self.error(diag);
                        continue;
                    }
                    steps.push(Step {
                        span: step.span,
                        agent,
                        action: StepAction::Uses(Ref {
                            id: cap,
                            span: ident.span,
                        }),
                    });
                }
                ast::StepActionAst::Invokes { callee, passing } => {
                    let Some(callee_id) = self.resolve(file, callee, Kind::Agent).map(AgentId)
                    else {
                        continue;
                    };
                    let passing: Vec<Ref<DataClassId>> = passing
                        .iter()
                        .flatten()
                        .filter_map(|ident| {
                            self.resolve(file, ident, Kind::Data).map(|i| Ref {
                                id: DataClassId(i),
                                span: ident.span,
                            })
                        })
                        .collect();
                    let may = self
                        .agents
                        .get(agent.index())
                        .is_some_and(|a| a.invokes.iter().any(|i| i.callee == callee_id));
                    if !may {
                        self.error(
                            Diagnostic::error(
                                "E0038",
                                callee.span,
                                format!("agent `{agent_name}` may not invoke `{}`", callee.text),
                            )
                            .with_label("no such delegation")
                            .with_help(format!("add `invokes {}` to agent `{agent_name}` if this delegation is intended", callee.text)),
                        );
                        continue;
                    }
                    steps.push(Step {
                        span: step.span,
                        agent,
                        action: StepAction::Invokes {
                            callee: Ref {
                                id: callee_id,
                                span: callee.span,
                            },
                            passing,
                        },
                    });
                }
            }
        }
        let id = WorkflowId(u32::try_from(self.workflows.len()).unwrap_or(u32::MAX));
        let orchestrator = d.orchestrator.as_ref().and_then(|name| {
            self.resolve(file, name, Kind::Authority).map(|i| Ref {
                id: AuthorityId(i),
                span: name.span,
            })
        });
        self.workflows.push(Workflow {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            orchestrator,
            ordered: d.ordered.is_some(),
            steps,
        });
    }

    fn agents_list(&mut self, file: usize, agents: &ast::AgentsAst) -> ZoneAgents {
        match agents {
            ast::AgentsAst::All(span) => ZoneAgents::All(*span),
            ast::AgentsAst::Names(names) => ZoneAgents::Listed(
                names
                    .iter()
                    .filter_map(|ident| {
                        self.resolve(file, ident, Kind::Agent).map(|i| Ref {
                            id: AgentId(i),
                            span: ident.span,
                        })
                    })
                    .collect(),
            ),
        }
    }

    fn exception(&mut self, file: usize, d: &ast::ExceptionDecl, span: Span, doc: Option<String>) {
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        let mut agents = None;
        let mut to = None;
        let mut approver: Option<Ref<AuthorityId>> = None;
        let mut max_ttl: Option<(u64, Span)> = None;
        let mut max_uses = None;
        let mut audit = None;
        let mut legal_basis = None;
        let owner = d.name.text.clone();
        for entry in &d.entries {
            let (what, entry_span) = match entry {
                ast::ExceptionEntry::Agents { span, .. } => ("agents", *span),
                ast::ExceptionEntry::To { span, .. } => ("to", *span),
                ast::ExceptionEntry::Approver { span, .. } => ("approver", *span),
                ast::ExceptionEntry::MaxTtl { span, .. } => ("max_ttl", *span),
                ast::ExceptionEntry::MaxUses { span, .. } => ("max_uses", *span),
                ast::ExceptionEntry::Audit { span, .. } => ("audit", *span),
                ast::ExceptionEntry::LegalBasis { span, .. } => ("legal_basis", *span),
            };
            if let Some(first) = seen.get(what) {
                let first = *first;
                self.duplicate_entry(entry_span, first, what);
                continue;
            }
            seen.insert(what, entry_span);
            match entry {
                ast::ExceptionEntry::Agents { agents: a, .. } => {
                    agents = Some(self.agents_list(file, a))
                }
                ast::ExceptionEntry::To { dest, .. } => {
                    to = self.dest_expr(file, dest, &owner);
                    if let Some((id, s)) = to {
                        self.allowlist_uses.entry(id).or_insert(s);
                    }
                }
                ast::ExceptionEntry::Approver { name, .. } => {
                    approver = self.resolve(file, name, Kind::Authority).map(|i| Ref {
                        id: AuthorityId(i),
                        span: name.span,
                    });
                }
                ast::ExceptionEntry::MaxTtl { value, .. } => match values::duration(value) {
                    Ok(secs) => max_ttl = Some((secs, value.span)),
                    Err(diag) => self.error(diag),
                },
                ast::ExceptionEntry::MaxUses { value, .. } => {
                    match value.value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0) {
                        Some(v) => max_uses = Some(v),
                        None => self.error(
                            Diagnostic::error("E0042", value.span, format!("`{}` is not a valid use count", value.text))
                                .with_label("must be from 1 to 4294967295")
                                .with_help("give how many connections one token may open, or drop `max_uses` for no limit within the lifetime"),
                        ),
                    }
                }
                ast::ExceptionEntry::Audit { dest, .. } => {
                    audit = self.dest_expr(file, dest, &owner);
                    if let Some((id, s)) = audit {
                        self.allowlist_uses.entry(id).or_insert(s);
                    }
                }
                ast::ExceptionEntry::LegalBasis { value, .. } => {
                    if value.value.trim().is_empty() {
                        self.error(
                            Diagnostic::error("E0039", value.span, "the legal basis is empty")
                                .with_label("empty text")
                                .with_help("cite the law or contract that mandates this call, e.g. \"GDPR Art. 17(1)\""),
                        );
                    } else {
                        legal_basis = Some(value.value.clone());
                    }
                }
            }
        }
        let name_span = d.name.span;
        if !seen.contains_key("audit") {
            self.error(
                Diagnostic::error(
                    "E0031",
                    name_span,
                    format!("exception `{owner}` has no audit sink"),
                )
                .with_label("unaudited exception")
                .with_help(
                    "every exception must say where its use is audited: add `audit DESTINATION`",
                ),
            );
        }
        for (what, help) in [
            ("agents", "say which agents may use it: `agents privacy_bot`"),
            ("to", "bound the run-time destination by a pattern: `to { host \"**.erasure.example\" port 443 }`"),
            ("approver", "name the authority whose key signs tokens: `approver dpo`"),
            ("max_ttl", "bound each token's lifetime: `max_ttl 15m`"),
            ("legal_basis", "cite the mandate as text: `legal_basis \"GDPR Art. 17\"`"),
        ] {
            if !seen.contains_key(what) {
                self.missing_entry(name_span, &format!("exception `{owner}`"), what, help);
            }
        }
        if let (Some((secs, ttl_span)), Some(approver)) = (max_ttl, approver) {
            if let Some(authority) = self.authorities.get(approver.id.index()) {
                let (limit, authority_span) = (authority.max_ttl_secs, authority.name.span);
                if limit > 0 && secs > limit {
                    self.error(
                        ttl_over(ttl_span, secs, limit, "its approver's `max_ttl`")
                            .with_secondary(authority_span, "the approver's limit is set here"),
                    );
                }
            }
        }
        if let Some((secs, ttl_span)) = max_ttl {
            if secs > MAX_EXCEPTION_TTL_SECS {
                self.error(ttl_over(
                    ttl_span,
                    secs,
                    MAX_EXCEPTION_TTL_SECS,
                    "the language's ceiling",
                ));
            }
        }
        let (
            Some(agents),
            Some(to),
            Some(approver),
            Some((max_ttl_secs, max_ttl_span)),
            Some(audit),
            Some(legal_basis),
        ) = (agents, to, approver, max_ttl, audit, legal_basis)
        else {
            return;
        };
        let agents = match agents {
            ZoneAgents::All(_) => self
                .agents
                .iter()
                .map(|a| Ref {
                    id: a.id,
                    span: a.name.span,
                })
                .collect(),
            ZoneAgents::Listed(list) => list,
        };
        let id = ExceptionId(u32::try_from(self.exceptions.len()).unwrap_or(u32::MAX));
        self.exceptions.push(Exception {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            agents,
            to: Ref {
                id: to.0,
                span: to.1,
            },
            approver,
            max_ttl_secs,
            max_ttl_span,
            max_uses,
            audit: Ref {
                id: audit.0,
                span: audit.1,
            },
            legal_basis,
        });
    }

    fn zone(&mut self, file: usize, d: &ast::ZoneDecl, span: Span, doc: Option<String>) {
        let mut owner = None;
        let mut agents: Option<ZoneAgents> = None;
        let mut approve = Vec::new();
        let mut approve_caps: Vec<CapApproval> = Vec::new();
        let mut approve_unix: Vec<UnixSocket> = Vec::new();
        let mut clearances = Vec::new();
        let mut seen: BTreeMap<&'static str, Span> = BTreeMap::new();
        for entry in &d.entries {
            match entry {
                ast::ZoneEntry::Owner { span, value } => {
                    if let Some(first) = seen.get("owner") {
                        let first = *first;
                        self.duplicate_entry(*span, first, "owner");
                        continue;
                    }
                    seen.insert("owner", *span);
                    owner = Some(value.value.clone());
                }
                ast::ZoneEntry::Agents { span, agents: a } => {
                    if let Some(first) = seen.get("agents") {
                        let first = *first;
                        self.duplicate_entry(*span, first, "agents");
                        continue;
                    }
                    seen.insert("agents", *span);
                    agents = Some(self.agents_list(file, a));
                }
                ast::ZoneEntry::Approve { names, .. } => {
                    for ident in names {
                        if let Some(i) = self.resolve(file, ident, Kind::Destination) {
                            let dest = DestId(i);
                            self.allowlist_uses.entry(dest).or_insert(ident.span);
                            approve.push(Ref {
                                id: dest,
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::ZoneEntry::ApproveGrant { names, .. } => {
                    for ident in names {
                        if !ident.text.starts_with("CAP_") {
                            self.error(
                                Diagnostic::error(
                                    "E0034",
                                    ident.span,
                                    format!("`{}` is not a Linux capability", ident.text),
                                )
                                .with_label("expected a capability such as `CAP_NET_RAW`")
                                .with_help("a zone approves Linux capabilities one by one, by name, so a reviewer sees each; capability sets are not accepted here"),
                            );
                            continue;
                        }
                        if let Some(cap) = self.linux_cap(ident) {
                            approve_caps.push(CapApproval {
                                cap,
                                span: ident.span,
                            });
                        }
                    }
                }
                ast::ZoneEntry::ApproveUnix { paths, .. } => {
                    for lit in paths {
                        match values::unix_socket_path(lit) {
                            Ok(path) => approve_unix.push(UnixSocket {
                                path,
                                span: lit.span,
                            }),
                            Err(diag) => self.error(diag),
                        }
                    }
                }
                ast::ZoneEntry::Clear { span, class, to } => {
                    let class = self.resolve(file, class, Kind::Data).map(|i| Ref {
                        id: DataClassId(i),
                        span: class.span,
                    });
                    let to: Vec<Ref<DestId>> = to
                        .iter()
                        .filter_map(|ident| {
                            self.resolve(file, ident, Kind::Destination).map(|i| Ref {
                                id: DestId(i),
                                span: ident.span,
                            })
                        })
                        .collect();
                    if let Some(class) = class {
                        clearances.push(Clearance {
                            class,
                            to,
                            span: *span,
                        });
                    }
                }
            }
        }
        let Some(agents) = agents else {
            self.missing_entry(
                d.name.span,
                &format!("zone `{}`", d.name.text),
                "agents",
                "say whose approvals these are: `agents invoice_bot, ledger` or `agents *`",
            );
            return;
        };
        let id = ZoneId(u32::try_from(self.zones.len()).unwrap_or(u32::MAX));
        self.zones.push(Zone {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            owner,
            agents,
            approve,
            approve_caps,
            approve_unix,
            clearances,
        });
    }

    fn assertion(&mut self, file: usize, d: &ast::AssertDecl, span: Span, doc: Option<String>) {
        let mut claims = Vec::new();
        let owner = d.name.text.clone();
        for claim in &d.claims {
            match claim {
                ast::ClaimAst::Agent {
                    span,
                    agent,
                    can,
                    dest,
                } => {
                    let who = match agent {
                        ast::AgentRef::All(s) => Some(AgentSel::All(*s)),
                        ast::AgentRef::Named(ident) => {
                            self.resolve(file, ident, Kind::Agent).map(|i| {
                                AgentSel::One(Ref {
                                    id: AgentId(i),
                                    span: ident.span,
                                })
                            })
                        }
                    };
                    let dest = self.dest_expr(file, dest, &owner);
                    if let (Some(agent), Some((id, dspan))) = (who, dest) {
                        let dest = Ref { id, span: dspan };
                        let kind = if *can {
                            ClaimKind::CanReach { agent, dest }
                        } else {
                            ClaimKind::CannotReach { agent, dest }
                        };
                        claims.push(Claim { span: *span, kind });
                    }
                }
                ast::ClaimAst::Data { span, class, dest } => {
                    let class = self.resolve(file, class, Kind::Data).map(|i| Ref {
                        id: DataClassId(i),
                        span: class.span,
                    });
                    let dest = self.dest_expr(file, dest, &owner);
                    if let (Some(class), Some((id, dspan))) = (class, dest) {
                        claims.push(Claim {
                            span: *span,
                            kind: ClaimKind::NeverReaches {
                                class,
                                dest: Ref { id, span: dspan },
                            },
                        });
                    }
                }
            }
        }
        let id = AssertId(u32::try_from(self.asserts.len()).unwrap_or(u32::MAX));
        self.asserts.push(Assertion {
            id,
            name: self.name(file, &d.name),
            span,
            doc,
            claims,
        });
    }

    /// W0004: a capability limited to workflows, used by an agent that no step of those
    /// workflows lets use it.
    fn check_workflow_limits(&mut self) {
        let mut warnings = Vec::new();
        for agent in &self.agents {
            for used in &agent.capabilities {
                let Some(cap) = self.capabilities.get(used.id.index()) else {
                    continue;
                };
                if cap.workflows.is_empty() {
                    continue;
                }
                let stepped = cap.workflows.iter().any(|w| {
                    self.workflows.get(w.id.index()).is_some_and(|wf| {
                        wf.steps.iter().any(|s| {
                            s.agent == agent.id
                                && matches!(&s.action, StepAction::Uses(c) if c.id == cap.id)
                        })
                    })
                });
                if !stepped {
                    warnings.push(
                        Diagnostic::warning(
                            "W0004",
                            used.span,
                            format!(
                                "agent `{}` can never use `{}`: no step of its workflows uses it",
                                agent.name.local, cap.name.local
                            ),
                        )
                        .with_label("unusable here")
                        .with_secondary(cap.name.span, "limited to workflows here")
                        .with_help(format!(
                            "add `step {} uses {}` to one of its workflows, or remove it from the agent",
                            agent.name.local, cap.name.local
                        )),
                    );
                }
            }
        }
        self.diagnostics.extend(warnings);
    }

    /// E0027/E0028/W0002/W0003 on destinations used as allowlists.
    fn check_allowlists(&mut self) {
        let mut found = Vec::new();
        for (dest_id, use_span) in &self.allowlist_uses {
            let Some(dest) = self.destinations.get(dest_id.index()) else {
                continue;
            };
            for endpoint in &dest.endpoints {
                if let EndpointKind::Host(pattern) = &endpoint.kind {
                    if values::is_too_broad(pattern) {
                        found.push(
                            Diagnostic::error(
                                "E0026",
                                endpoint.span,
                                format!("the pattern `{pattern}` is so broad it means almost anything"),
                            )
                            .with_label("matches a whole top-level domain or every host")
                            .with_secondary(*use_span, "allowed here")
                            .with_help("name the registered domain at least: \"*.api.example.com\" or \"**.corp.example\""),
                        );
                    }
                }
                if let EndpointKind::Cidr(set) = &endpoint.kind {
                    let prefix = set.network.prefix_len();
                    if prefix == 0 && !set.except.is_empty() {
                        found.push(
                            Diagnostic::error(
                                "E0028",
                                endpoint.span,
                                format!("`{}` with exclusions is a denylist, used here as an allowlist", set.network),
                            )
                            .with_label("everything except a few networks")
                            .with_secondary(*use_span, "allowed here")
                            .with_help("list the networks the agent needs instead of excluding the ones it must not reach"),
                        );
                    } else if prefix == 0 {
                        found.push(
                            Diagnostic::error(
                                "E0027",
                                endpoint.span,
                                format!("`{}` means any address", set.network),
                            )
                            .with_label("allows everything")
                            .with_secondary(*use_span, "allowed here")
                            .with_help("name the specific networks the agent needs"),
                        );
                    } else if (set.network.addr().is_ipv4() && prefix < 8)
                        || (set.network.addr().is_ipv6() && prefix < 16)
                    {
                        found.push(
                            Diagnostic::warning(
                                "W0003",
                                endpoint.span,
                                format!("`{}` is a very broad network to allow", set.network),
                            )
                            .with_label("very broad")
                            .with_secondary(*use_span, "allowed here")
                            .with_help("narrow the network to what the agent needs"),
                        );
                    }
                }
            }
            if dest.ports.iter().any(|p| p.start <= 1 && p.end == 65535) {
                found.push(
                    Diagnostic::warning(
                        "W0002",
                        dest.name.span,
                        format!("destination `{}` allows every port", dest.name.local),
                    )
                    .with_label("all ports")
                    .with_secondary(*use_span, "allowed here")
                    .with_help("name the ports the service listens on"),
                );
            }
        }
        self.diagnostics.extend(found);
    }

    fn check_unused_imports(&mut self) {
        let mut found = Vec::new();
        for file in &self.files {
            if file.is_stdlib {
                continue;
            }
            for (alias, info) in &file.imports {
                if !info.used && info.target.is_some() {
                    found.push(
                        Diagnostic::warning(
                            "W0001",
                            info.span,
                            format!("the import `{alias}` is never used"),
                        )
                        .with_label("unused")
                        .with_help("remove the import"),
                    );
                }
            }
        }
        self.diagnostics.extend(found);
    }

    pub(crate) fn finish(mut self) -> CheckResult {
        sort_diagnostics(&mut self.diagnostics);
        let files: Vec<LoadedFile> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                LoadedFile::new(
                    Self::file_id(i),
                    f.path.clone(),
                    f.text.clone(),
                    f.is_stdlib,
                )
            })
            .collect();
        let has_errors = self.diagnostics.iter().any(|d| d.is_error());
        let policy = (!has_errors).then(|| CheckedPolicy {
            files: self
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| SourceFile {
                    id: Self::file_id(i),
                    path: f.path.clone(),
                    module: f.module.clone(),
                    is_stdlib: f.is_stdlib,
                })
                .collect(),
            data_classes: std::mem::take(&mut self.data_classes),
            destinations: std::mem::take(&mut self.destinations),
            capabilities: std::mem::take(&mut self.capabilities),
            agents: std::mem::take(&mut self.agents),
            workflows: std::mem::take(&mut self.workflows),
            exceptions: std::mem::take(&mut self.exceptions),
            authorities: std::mem::take(&mut self.authorities),
            zones: std::mem::take(&mut self.zones),
            syscall_groups: std::mem::take(&mut self.syscall_groups),
            cap_sets: std::mem::take(&mut self.cap_sets),
            asserts: std::mem::take(&mut self.asserts),
            _sealed: Sealed::default(),
        });
        self.symbols
            .sort_by(|a, b| (a.name_span, &a.qualified).cmp(&(b.name_span, &b.qualified)));
        self.references.sort_by_key(|a| (a.span, a.target));
        self.references.dedup();
        CheckResult {
            files,
            diagnostics: self.diagnostics,
            policy,
            symbols: self.symbols,
            references: self.references,
        }
    }
}

fn ttl_over(span: Span, secs: u64, limit: u64, what: &str) -> Diagnostic {
    Diagnostic::error(
        "E0032",
        span,
        format!(
            "a token lifetime of {} is over {what} of {}",
            values::format_duration(secs),
            values::format_duration(limit)
        ),
    )
    .with_label("too long")
    .with_help(format!(
        "lower `max_ttl` to {} or less",
        values::format_duration(limit)
    ))
}

fn stdlib_list() -> String {
    crate::stdlib::MODULES
        .iter()
        .map(|(n, _)| format!("`std.{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sorts and merges overlapping or adjacent port ranges.
fn merge_ports(sorted: Vec<PortRange>) -> Vec<PortRange> {
    let mut out: Vec<PortRange> = Vec::new();
    for range in sorted {
        match out.last_mut() {
            Some(last) if u32::from(range.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(range.end);
            }
            _ => out.push(range),
        }
    }
    out
}
