//! Caches and the bridge to the checker: projects, policies, check results, parses.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use egress_check::{CheckResult, FileSource, ReadError, Symbol};
use egress_syntax::{FileId, Parsed, Span};

use crate::vfs::Vfs;
use crate::{is_policy_file, normalize, Analysis, FileRange, FileRef, TextRange};

/// How many parses the parse cache keeps before it starts over.
const PARSE_CACHE_LIMIT: usize = 4096;
/// How deep the workspace walk descends.
const MAX_WALK_DEPTH: usize = 16;
/// How many directories the workspace walk visits at most (a home directory opened as a
/// workspace must not stall references or workspace symbols).
const MAX_WALK_DIRECTORIES: usize = 20_000;

pub(crate) struct State {
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) roots: Vec<PathBuf>,
    cache: Mutex<Cache>,
}

type PolicyKey = (PathBuf, String);

#[derive(Default)]
struct Cache {
    checks: HashMap<PolicyKey, Arc<CachedCheck>>,
    parses: HashMap<u64, Arc<Parsed>>,
    /// One lock per policy, so two threads asking for the same check (the diagnostics
    /// thread and a request right after an edit) compute it once.
    checking: HashMap<PolicyKey, Arc<Mutex<()>>>,
    /// The last verifier report of each policy, with the check result it verified.
    verifications: HashMap<PolicyKey, (Arc<CheckResult>, Arc<egress_verify::Report>)>,
    /// What the verifier proved of each policy, so a run after an edit re-verifies only
    /// the agents the edit touched (`egress_verify::verify_incremental`).
    memos: HashMap<PolicyKey, Arc<egress_verify::Memo>>,
}

/// A check result with what it was computed from.
pub(crate) struct CachedCheck {
    roots: Vec<String>,
    /// Every path the checker asked for, with the hash of what it got.
    reads: Vec<(String, Option<u64>)>,
    pub(crate) result: Arc<CheckResult>,
}

impl State {
    pub(crate) fn new(vfs: Arc<dyn Vfs>, roots: Vec<PathBuf>) -> State {
        State {
            vfs,
            roots,
            cache: Mutex::new(Cache::default()),
        }
    }
}

impl State {
    pub(crate) fn verification(
        &self,
        key: &PolicyKey,
    ) -> Option<(Arc<CheckResult>, Arc<egress_verify::Report>)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.verifications.get(key).cloned()
    }

    pub(crate) fn store_verification(
        &self,
        key: PolicyKey,
        result: Arc<CheckResult>,
        report: Arc<egress_verify::Report>,
        memo: egress_verify::Memo,
    ) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.memos.insert(key.clone(), Arc::new(memo));
        cache.verifications.insert(key, (result, report));
    }

    /// The memo of the last verification of a policy (empty before the first).
    pub(crate) fn memo(&self, key: &PolicyKey) -> Arc<egress_verify::Memo> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.memos.get(key).cloned().unwrap_or_default()
    }
}

pub(crate) fn hash_text(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The project a file belongs to: the innermost workspace root containing it, else the
/// file's own directory. Paths inside a project are `/`-separated and relative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Project {
    pub(crate) root: PathBuf,
    /// The file's path relative to `root`.
    pub(crate) rel: String,
    /// The file's directory relative to `root` (`""` for the root itself).
    pub(crate) dir: String,
}

impl Project {
    pub(crate) fn of(roots: &[PathBuf], path: &Path) -> Project {
        let root = roots
            .iter()
            .filter(|r| path.starts_with(r) && path != r.as_path())
            .max_by_key(|r| r.components().count())
            .cloned()
            .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
        let rel = relative(&root, path);
        let dir = match rel.rfind('/') {
            Some(i) => rel.get(..i).unwrap_or("").to_string(),
            None => String::new(),
        };
        Project { root, rel, dir }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    let rest = path.strip_prefix(root).unwrap_or(path);
    rest.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The `.egress` files directly in the project's directory (on disk or open), relative.
pub(crate) fn policy_roots(analysis: &Analysis, project: &Project) -> Vec<String> {
    let dir_abs = if project.dir.is_empty() {
        project.root.clone()
    } else {
        project.root.join(&project.dir)
    };
    let mut roots: Vec<String> = Vec::new();
    for entry in analysis.state.vfs.read_dir(&dir_abs) {
        if !entry.is_dir && is_policy_file(&entry.path) {
            if let Some(name) = entry.path.file_name() {
                roots.push(join_rel(&project.dir, &name.to_string_lossy()));
            }
        }
    }
    for path in analysis.overlay.keys() {
        if is_policy_file(path) && path.parent() == Some(dir_abs.as_path()) {
            if let Some(name) = path.file_name() {
                roots.push(join_rel(&project.dir, &name.to_string_lossy()));
            }
        }
    }
    roots.sort();
    roots.dedup();
    roots
}

pub(crate) fn walk_egress_files(
    analysis: &Analysis,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut usize,
    depth: usize,
) {
    if depth > MAX_WALK_DEPTH || *visited >= MAX_WALK_DIRECTORIES || analysis.is_cancelled() {
        return;
    }
    *visited += 1;
    for entry in analysis.state.vfs.read_dir(dir) {
        let name = entry
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if entry.is_dir {
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            walk_egress_files(analysis, &entry.path, out, visited, depth + 1);
        } else if is_policy_file(&entry.path) {
            out.push(entry.path);
        }
    }
}

/// Reads project files for the checker: open buffers first, then the disk. Records every
/// read so the cached result can be validated later.
struct RecordingSource<'a> {
    analysis: &'a Analysis,
    root: &'a Path,
    reads: RefCell<Vec<(String, Option<u64>)>>,
}

impl FileSource for RecordingSource<'_> {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        let text = read_rel(self.analysis, self.root, path);
        self.reads
            .borrow_mut()
            .push((path.to_string(), text.as_deref().map(hash_text)));
        text.ok_or(ReadError::NotFound)
    }
}

fn read_rel(analysis: &Analysis, root: &Path, rel: &str) -> Option<String> {
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return None;
    }
    analysis.file_text(&root.join(rel)).map(|t| t.to_string())
}

impl Analysis {
    /// The check result of the policy of `project`'s directory, from the cache when no file
    /// it read has changed.
    pub(crate) fn check_project(&self, project: &Project) -> Arc<CheckResult> {
        let roots = policy_roots(self, project);
        let key = (project.root.clone(), project.dir.clone());
        let policy_lock = {
            let mut cache = self.state.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.checking.entry(key.clone()).or_default().clone()
        };
        let _checking = policy_lock.lock().unwrap_or_else(|e| e.into_inner());
        let cached = {
            let cache = self.state.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.checks.get(&key).cloned()
        };
        if let Some(cached) = cached {
            if cached.roots == roots
                && cached.reads.iter().all(|(rel, hash)| {
                    read_rel(self, &project.root, rel).as_deref().map(hash_text) == *hash
                })
            {
                return cached.result.clone();
            }
        }
        if self.is_cancelled() {
            // A newer edit made this snapshot stale: skip the check; nothing computed
            // from a cancelled snapshot is shown.
            return Arc::new(CheckResult {
                files: Vec::new(),
                diagnostics: Vec::new(),
                policy: None,
                symbols: Vec::new(),
                references: Vec::new(),
            });
        }
        let source = RecordingSource {
            analysis: self,
            root: &project.root,
            reads: RefCell::new(Vec::new()),
        };
        let result = Arc::new(egress_check::check(&source, &roots));
        let mut reads = source.reads.into_inner();
        reads.sort();
        reads.dedup();
        let entry = Arc::new(CachedCheck {
            roots,
            reads,
            result: result.clone(),
        });
        let mut cache = self.state.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.checks.insert(key, entry);
        result
    }

    /// Parses a text, from the cache when the same text was parsed before.
    pub(crate) fn parse_cached(&self, text: &str) -> Arc<Parsed> {
        let hash = hash_text(text);
        {
            let cache = self.state.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(parsed) = cache.parses.get(&hash) {
                return parsed.clone();
            }
        }
        let parsed = Arc::new(egress_syntax::parse(FileId(0), text));
        let mut cache = self.state.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.parses.len() >= PARSE_CACHE_LIMIT {
            cache.parses.clear();
        }
        cache.parses.insert(hash, parsed.clone());
        parsed
    }

    /// Everything a query about one file needs.
    pub(crate) fn file_context(&self, path: &Path) -> Option<FileContext> {
        let path = normalize(path);
        let text = self.file_text(&path)?;
        let project = self.project_of(&path);
        let result = self.check_project(&project);
        let file_id = result
            .files
            .iter()
            .find(|f| !f.is_stdlib && f.path == project.rel)
            .map(|f| f.id);
        let parsed = self.parse_cached(&text);
        Some(FileContext {
            path,
            text,
            project,
            result,
            file_id,
            parsed,
        })
    }

    /// The check results of every policy in the workspace (for references and rename),
    /// the file's own policy first.
    pub(crate) fn all_contexts(&self, first: &FileContext) -> Vec<(Project, Arc<CheckResult>)> {
        let mut out = vec![(first.project.clone(), first.result.clone())];
        let mut seen: Vec<(PathBuf, String)> =
            vec![(first.project.root.clone(), first.project.dir.clone())];
        for file in self.workspace_files() {
            if self.is_cancelled() {
                break;
            }
            let project = self.project_of(&file);
            let key = (project.root.clone(), project.dir.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let result = self.check_project(&project);
            out.push((project, result));
        }
        out
    }

    /// Maps a span of a check result to a location an editor can open. A stdlib module
    /// maps to `stdlib/NAME.egress` in a workspace root when that file exists.
    pub(crate) fn span_location(
        &self,
        project: &Project,
        result: &CheckResult,
        span: Span,
    ) -> Option<FileRange> {
        let file = result.file(span.file)?;
        let range = TextRange::new(span.start as usize, span.end as usize);
        if !file.is_stdlib {
            return Some(FileRange {
                file: FileRef::Path(project.root.join(&file.path)),
                range,
            });
        }
        let name = file
            .path
            .strip_prefix("std/")
            .and_then(|p| p.strip_suffix(".egress"))
            .unwrap_or(&file.path)
            .to_string();
        let mut candidates: Vec<PathBuf> = self
            .state
            .roots
            .iter()
            .map(|r| r.join("stdlib").join(format!("{name}.egress")))
            .collect();
        candidates.push(project.root.join("stdlib").join(format!("{name}.egress")));
        for candidate in candidates {
            let Some(real) = self.file_text(&candidate) else {
                continue;
            };
            if *real == *file.text {
                return Some(FileRange {
                    file: FileRef::Path(candidate),
                    range,
                });
            }
            // The workspace copy differs from the embedded one: find the same name there.
            let wanted = file.text.get(span.range()).unwrap_or("");
            let parsed = self.parse_cached(&real);
            if let Some(ident) = parsed
                .ast
                .items
                .iter()
                .flat_map(crate::symbols::declared_idents)
                .find(|i| i.text == wanted)
            {
                return Some(FileRange {
                    file: FileRef::Path(candidate),
                    range: TextRange::new(ident.span.start as usize, ident.span.end as usize),
                });
            }
        }
        Some(FileRange {
            file: FileRef::Stdlib {
                name,
                text: file.text.clone(),
            },
            range,
        })
    }
}

/// A file with its policy's check result.
pub(crate) struct FileContext {
    pub(crate) path: PathBuf,
    pub(crate) text: Arc<str>,
    pub(crate) project: Project,
    pub(crate) result: Arc<CheckResult>,
    /// The file's id in `result`, when the checker loaded it.
    pub(crate) file_id: Option<FileId>,
    pub(crate) parsed: Arc<Parsed>,
}

/// What the cursor is on: a declaration, reached directly or through a reference.
pub(crate) struct Target<'a> {
    pub(crate) symbol: &'a Symbol,
    /// The range under the cursor (the reference or the declared name).
    pub(crate) range: TextRange,
}

impl FileContext {
    pub(crate) fn symbol_at(&self, offset: usize) -> Option<Target<'_>> {
        let file_id = self.file_id?;
        let result = &self.result;
        let reference = result
            .references
            .iter()
            .filter(|r| r.span.file == file_id)
            .filter(|r| span_range(r.span).touches(offset))
            .min_by_key(|r| r.span.end - r.span.start);
        if let Some(reference) = reference {
            if let Some(symbol) = result
                .symbols
                .iter()
                .find(|s| s.name_span == reference.target)
            {
                return Some(Target {
                    symbol,
                    range: span_range(reference.span),
                });
            }
        }
        let symbol = result
            .symbols
            .iter()
            .filter(|s| s.name_span.file == file_id)
            .find(|s| span_range(s.name_span).touches(offset))?;
        Some(Target {
            symbol,
            range: span_range(symbol.name_span),
        })
    }

    pub(crate) fn location(&self, analysis: &Analysis, span: Span) -> Option<FileRange> {
        analysis.span_location(&self.project, &self.result, span)
    }

    pub(crate) fn file_path_of(&self, id: FileId) -> Option<String> {
        self.result.file(id).map(|f| f.path.clone())
    }
}

pub(crate) fn span_range(span: Span) -> TextRange {
    TextRange::new(span.start as usize, span.end as usize)
}

/// A checked policy with the analysis it came from, for clients that need the model
/// itself (the verifier on save).
pub struct CheckedPolicyView {
    pub root: PathBuf,
    pub result: Arc<CheckResult>,
}

impl Analysis {
    /// The check result of the policy `path` belongs to.
    pub fn check_result(&self, path: &Path) -> CheckedPolicyView {
        let project = self.project_of(path);
        let result = self.check_project(&project);
        CheckedPolicyView {
            root: project.root,
            result,
        }
    }

    /// Maps a span of [`Analysis::check_result`]'s result to an editor location.
    pub fn location_of(&self, view: &CheckedPolicyView, span: Span) -> Option<FileRange> {
        let project = Project {
            root: view.root.clone(),
            rel: String::new(),
            dir: String::new(),
        };
        self.span_location(&project, &view.result, span)
    }
}
