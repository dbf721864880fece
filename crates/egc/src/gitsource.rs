//! Policies read from a git revision without touching the work tree (`egc diff
//! BASE..HEAD`): the git command line lists the revision's files (`git ls-tree -r`) and
//! prints each (`git show REV:PATH`) through an in-memory `FileSource`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use egress_check::ReadError;

use crate::common::{LoadedPolicy, MAX_FILE_BYTES};

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

fn git_text(repo: &Path, args: &[&str]) -> Result<String, String> {
    let bytes = git(repo, args)?;
    String::from_utf8(bytes).map_err(|_| format!("`git {}` printed non-UTF-8", args.join(" ")))
}

/// The repository's top directory and the current directory's path inside it (`""` or
/// `dir/`), for the repository holding `dir`.
pub fn repository_of(dir: &Path) -> Result<(std::path::PathBuf, String), String> {
    let top = git_text(dir, &["rev-parse", "--show-toplevel"])?;
    let prefix = git_text(dir, &["rev-parse", "--show-prefix"])?;
    Ok((top.trim().into(), prefix.trim().to_string()))
}

/// `prefix` joined with `path`, `.` and `..` resolved, `/`-separated; `""` is the top.
pub fn repo_path(prefix: &str, path: &Path) -> Result<String, String> {
    let mut parts: Vec<String> = prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("`{}` leaves the repository", path.display()));
                }
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {
                return Err(format!(
                    "`{}`: give a path inside the repository",
                    path.display()
                ))
            }
        }
    }
    Ok(parts.join("/"))
}

/// A revision's files, read on demand with `git show REV:PATH` (imports included).
pub struct GitSource {
    top: std::path::PathBuf,
    rev: String,
    /// Every blob of the revision with its size.
    blobs: BTreeMap<String, u64>,
}

impl egress_check::FileSource for GitSource {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        let size = *self.blobs.get(path).ok_or(ReadError::NotFound)?;
        if size > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(size));
        }
        let bytes =
            git(&self.top, &["show", &format!("{}:{path}", self.rev)]).map_err(ReadError::Io)?;
        String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
    }
}

impl GitSource {
    /// Lists the blobs of `rev` (`git ls-tree -r --long`).
    pub fn open(top: &Path, rev: &str) -> Result<GitSource, String> {
        let commit = format!("{rev}^{{commit}}");
        git(top, &["rev-parse", "--verify", "--quiet", &commit])
            .map_err(|_| format!("`{rev}` is not a revision of this repository"))?;
        let listing = git(top, &["ls-tree", "-r", "-z", "--long", "--full-tree", rev])?;
        let mut blobs = BTreeMap::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            // `MODE TYPE OBJECT SIZE\tPATH`
            let Some((meta, name)) = entry.split_once('\t') else {
                continue;
            };
            let meta: Vec<&str> = meta.split_whitespace().collect();
            if let [_mode, "blob", _object, size] = meta.as_slice() {
                blobs.insert(name.to_string(), size.parse().unwrap_or(u64::MAX));
            }
        }
        Ok(GitSource {
            top: top.to_path_buf(),
            rev: rev.to_string(),
            blobs,
        })
    }

    /// The `.egress` files under `path` (repository-relative, `""` for all), sorted.
    pub fn policy_files(&self, path: &str) -> Vec<String> {
        self.blobs
            .keys()
            .filter(|name| {
                let inside =
                    path.is_empty() || *name == path || name.starts_with(&format!("{path}/"));
                let hidden = name
                    .split('/')
                    .any(|p| p.starts_with('.') || p == "target" || p == "node_modules");
                inside && !hidden && name.ends_with(".egress")
            })
            .cloned()
            .collect()
    }
}

/// The policies of one revision: each directory that directly holds `.egress` files under
/// `path`, checked with imports read from the same revision.
pub fn load_revision(top: &Path, rev: &str, path: &str) -> Result<Vec<LoadedPolicy>, String> {
    let source = GitSource::open(top, rev)?;
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in source.policy_files(path) {
        let dir = name
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_else(|| ".".into());
        groups.entry(dir).or_default().push(name);
    }
    Ok(groups
        .into_iter()
        .map(|(dir, roots)| LoadedPolicy {
            dir,
            result: egress_check::check_without_editor_data(&source, &roots),
        })
        .collect())
}
