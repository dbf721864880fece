//! The IDE layer of egc: everything an editor asks about policies, answered in plain data
//! (absolute paths, byte offsets, strings). It knows nothing of LSP or JSON-RPC; the
//! `egress-lsp` crate translates.
//!
//! **API boundary:** [`AnalysisHost`] holds the open buffers (the overlay); an
//! [`Analysis`] is an immutable snapshot of it that can be sent to another thread and
//! answers every query. Offsets are byte offsets into the file's current text.
//!
//! **Architecture invariant:** a query never panics on any input and never performs
//! I/O except through the [`Vfs`] it was given.
//!
//! Incrementality: a policy is one directory's `.egress` files plus what they import.
//! Checking a file checks the policy of its directory only. Each check result is cached
//! with every file the checker read and a hash of its text; the result is reused as long
//! as no such file changed. Parses (for symbols and highlighting) are cached by content
//! hash.

mod actions;
mod completion;
mod db;
mod diagnostics;
mod hover;
mod navigation;
mod symbols;
mod tokens;
mod verification;
pub mod vfs;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub use completion::{CompletionItem, CompletionKind};
pub use db::CheckedPolicyView;
pub use diagnostics::{FileDiagnostic, RelatedInfo, Severity};
pub use hover::HoverResult;
pub use symbols::{DocumentSymbol, WorkspaceSymbol};
pub use tokens::{HighlightTag, HighlightedRange};
pub use vfs::{DirEntry, MemoryVfs, Vfs};

/// A byte range in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TextRange {
    pub start: usize,
    pub end: usize,
}

impl TextRange {
    pub fn new(start: usize, end: usize) -> TextRange {
        TextRange { start, end }
    }
    /// Does the range contain `offset`? The end is included, so a cursor right after a
    /// name still counts as on it.
    pub fn touches(self, offset: usize) -> bool {
        self.start <= offset && offset <= self.end
    }
    pub fn overlaps(self, other: TextRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// A file an answer points into.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileRef {
    /// A file on disk (or open in the editor), by absolute path.
    Path(PathBuf),
    /// A stdlib module embedded in the checker, with no copy in the workspace: `name` is
    /// `dns` for `std/dns.egress`. The client may show `text` read-only.
    Stdlib { name: String, text: Arc<str> },
}

impl FileRef {
    pub fn path(&self) -> Option<&Path> {
        match self {
            FileRef::Path(p) => Some(p),
            FileRef::Stdlib { .. } => None,
        }
    }
}

/// A range in a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileRange {
    pub file: FileRef,
    pub range: TextRange,
}

/// Replace `range` of a file with `new_text`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TextEdit {
    pub range: TextRange,
    pub new_text: String,
}

/// Edits to several files, sorted by path and position.
pub type WorkspaceEdit = BTreeMap<PathBuf, Vec<TextEdit>>;

/// A fix offered for a diagnostic ("did you mean ...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeAction {
    pub title: String,
    /// The diagnostic code this fixes.
    pub code: &'static str,
    pub edit: WorkspaceEdit,
    pub is_preferred: bool,
}

/// Why a rename was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenameError(pub String);

impl std::fmt::Display for RenameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Owns the open buffers and the caches; hands out [`Analysis`] snapshots.
pub struct AnalysisHost {
    state: Arc<db::State>,
    overlay: Arc<BTreeMap<PathBuf, Arc<str>>>,
}

impl AnalysisHost {
    /// `workspace_roots` are the editor's workspace folders. A file under none of them is
    /// its own project, rooted at its directory.
    pub fn new(vfs: Arc<dyn Vfs>, workspace_roots: Vec<PathBuf>) -> AnalysisHost {
        let mut roots: Vec<PathBuf> = workspace_roots.iter().map(|r| normalize(r)).collect();
        roots.sort();
        roots.dedup();
        AnalysisHost {
            state: Arc::new(db::State::new(vfs, roots)),
            overlay: Arc::new(BTreeMap::new()),
        }
    }

    /// Sets the text of an open buffer (it shadows the file on disk).
    pub fn set_file_text(&mut self, path: &Path, text: impl Into<Arc<str>>) {
        Arc::make_mut(&mut self.overlay).insert(normalize(path), text.into());
    }

    /// Forgets an open buffer: the file on disk counts again.
    pub fn close_file(&mut self, path: &Path) {
        Arc::make_mut(&mut self.overlay).remove(&normalize(path));
    }

    pub fn file_text(&self, path: &Path) -> Option<Arc<str>> {
        self.overlay.get(&normalize(path)).cloned()
    }

    pub fn snapshot(&self) -> Analysis {
        Analysis {
            state: self.state.clone(),
            overlay: self.overlay.clone(),
            cancelled: None,
        }
    }
}

/// An immutable view of the workspace: the open buffers at one moment, over the disk.
/// Cheap to clone and `Send + Sync`: queries run on worker threads.
#[derive(Clone)]
pub struct Analysis {
    state: Arc<db::State>,
    overlay: Arc<BTreeMap<PathBuf, Arc<str>>>,
    cancelled: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl Analysis {
    /// A snapshot whose queries stop early once `cancelled` returns true (a newer edit
    /// arrived): a check that has not started yet is skipped. Answers of a cancelled
    /// snapshot are incomplete, and the caller must drop them.
    pub fn with_cancellation(mut self, cancelled: Arc<dyn Fn() -> bool + Send + Sync>) -> Analysis {
        self.cancelled = Some(cancelled);
        self
    }

    /// Has this snapshot been cancelled?
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.as_ref().is_some_and(|f| f())
    }

    /// The text of a file: the open buffer, else the file on disk.
    pub fn file_text(&self, path: &Path) -> Option<Arc<str>> {
        let path = normalize(path);
        if let Some(text) = self.overlay.get(&path) {
            return Some(text.clone());
        }
        self.state.vfs.read_file(&path).map(Arc::from)
    }

    /// The open buffers, by path.
    pub fn open_files(&self) -> impl Iterator<Item = &Path> {
        self.overlay.keys().map(|p| p.as_path())
    }

    /// The `.egress` files that make up the policy `path` belongs to (its directory),
    /// sorted. These are the files whose diagnostics [`Analysis::policy_diagnostics`]
    /// reports.
    pub fn policy_files(&self, path: &Path) -> Vec<PathBuf> {
        let project = self.project_of(path);
        db::policy_roots(self, &project)
            .iter()
            .map(|rel| project.root.join(rel))
            .collect()
    }

    /// Every policy file in the workspace roots (skipping hidden directories, `target`
    /// and `node_modules`), sorted.
    pub fn workspace_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut visited = 0;
        for root in &self.state.roots {
            db::walk_egress_files(self, root, &mut out, &mut visited, 0);
        }
        for path in self.overlay.keys() {
            if is_policy_file(path) && !out.contains(path) {
                out.push(path.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn project_of(&self, path: &Path) -> db::Project {
        db::Project::of(&self.state.roots, &normalize(path))
    }
}

/// Is this a policy source file?
pub fn is_policy_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "egress")
}

/// Lexically normalises a path: removes `.` components and folds `..`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
