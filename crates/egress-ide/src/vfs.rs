//! Where the IDE layer reads files that are not open in the editor.
//!
//! The IDE layer does no I/O of its own: the language server hands it a [`Vfs`] over the
//! real file system, and tests and benchmarks hand it a [`MemoryVfs`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// An entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// Read access to files that are not open in the editor.
pub trait Vfs: Send + Sync {
    /// The text of a file, or `None` when it does not exist or is not UTF-8.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// The entries of a directory (empty when it does not exist).
    fn read_dir(&self, dir: &Path) -> Vec<DirEntry>;
}

/// An in-memory file tree, for tests and benchmarks. Cloning shares the tree.
#[derive(Clone, Debug, Default)]
pub struct MemoryVfs {
    files: Arc<RwLock<BTreeMap<PathBuf, String>>>,
}

impl MemoryVfs {
    pub fn new() -> MemoryVfs {
        MemoryVfs::default()
    }

    pub fn write(&self, path: impl Into<PathBuf>, text: impl Into<String>) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        files.insert(path.into(), text.into());
    }

    pub fn remove(&self, path: &Path) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        files.remove(path);
    }
}

impl Vfs for MemoryVfs {
    fn read_file(&self, path: &Path) -> Option<String> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files.get(path).cloned()
    }

    fn read_dir(&self, dir: &Path) -> Vec<DirEntry> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<DirEntry> = Vec::new();
        for path in files.keys() {
            let Ok(rest) = path.strip_prefix(dir) else {
                continue;
            };
            let mut components = rest.components();
            let Some(first) = components.next() else {
                continue;
            };
            let is_dir = components.next().is_some();
            let entry = DirEntry {
                path: dir.join(first.as_os_str()),
                is_dir,
            };
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        out.sort();
        out
    }
}
