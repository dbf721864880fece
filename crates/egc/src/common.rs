//! What every subcommand shares: finding and loading policies from disk, output formats
//! and terminal detection. Rendering (human, JSON, SARIF) lives in [`crate::render`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use egress_check::{CheckResult, FileSource, ReadError};
use egress_syntax::Span;

/// At most this many diagnostics are rendered for people per policy; JSON has them all.
pub const MAX_RENDERED: usize = 200;

/// The largest policy file read from disk, in bytes.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

/// One policy: the `.egress` files directly inside one directory, plus what they import.
pub struct LoadedPolicy {
    /// The directory, relative to the project root (`.` for the root itself).
    pub dir: String,
    pub result: CheckResult,
}

/// Reads project files below a root directory.
pub struct DiskSource {
    pub root: PathBuf,
}

impl FileSource for DiskSource {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        let full = self.root.join(path);
        let metadata = std::fs::metadata(&full).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e.to_string()),
        })?;
        if !metadata.is_file() {
            return Err(ReadError::Io("not a regular file".into()));
        }
        if metadata.len() > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(metadata.len()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
        std::fs::File::open(&full)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| ReadError::Io(e.to_string()))?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_BYTES {
            return Err(ReadError::TooLarge(
                u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            ));
        }
        String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
    }
}

/// Prints a usage or I/O error and returns exit code 2.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn absolute(path: &Path) -> Result<PathBuf, ExitCode> {
    let cwd = std::env::current_dir()
        .map_err(|e| usage_error(format!("cannot read the current directory: {e}")))?;
    Ok(normalize(&cwd.join(path)))
}

/// `path` made absolute against the current directory, `.` and `..` resolved lexically.
pub fn absolute_path(path: &Path) -> Result<PathBuf, ExitCode> {
    absolute(path)
}

/// Loads a boundary (`egc verify --within`): a file or a directory that must hold exactly
/// one policy, checked on its own (its imports are relative to it). Check errors are
/// printed, and the exit code is 1 then.
pub fn load_boundary(path: &Path, format: Format) -> Result<LoadedPolicy, ExitCode> {
    let mut policies = load_policies(&[path.to_path_buf()], None)?;
    let found = policies.len();
    let (Some(boundary), true) = (policies.pop(), found == 1) else {
        return Err(usage_error(format!(
            "the boundary `{}` must be one policy (the `.egress` files of one directory), found {found}",
            path.display()
        )));
    };
    if boundary.result.policy.is_none() {
        print_diagnostics(std::slice::from_ref(&boundary), format);
        eprintln!("error: the boundary `{}` has check errors", path.display());
        return Err(ExitCode::from(1));
    }
    Ok(boundary)
}

/// The project root: `--root`, else the nearest ancestor of the current directory with an
/// `egress.toml`, else the current directory when every input is inside it, else the
/// deepest directory containing every input.
pub fn project_root(inputs: &[PathBuf], root: Option<&Path>) -> Result<PathBuf, ExitCode> {
    if let Some(root) = root {
        return absolute(root);
    }
    let cwd = absolute(Path::new("."))?;
    let mut probe = Some(cwd.as_path());
    while let Some(dir) = probe {
        if dir.join("egress.toml").is_file() && inputs.iter().all(|i| i.starts_with(dir)) {
            return Ok(dir.to_path_buf());
        }
        probe = dir.parent();
    }
    if inputs.iter().all(|i| i.starts_with(&cwd)) {
        return Ok(cwd);
    }
    let mut common = inputs
        .first()
        .map(|p| {
            if p.is_dir() {
                p.clone()
            } else {
                p.parent().map(Path::to_path_buf).unwrap_or_default()
            }
        })
        .unwrap_or(cwd);
    while !inputs.iter().all(|i| i.starts_with(&common)) {
        if !common.pop() {
            break;
        }
    }
    Ok(common)
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

/// Collects `.egress` files under `path` (a file or a directory), sorted.
fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if name.ends_with(".egress") {
            out.push(entry);
        }
    }
    Ok(())
}

/// Finds every `.egress` file under `paths` (absolute, sorted, deduplicated).
pub fn find_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ExitCode> {
    if paths.is_empty() {
        return Err(usage_error("no input: give policy files or directories"));
    }
    let mut files = Vec::new();
    for path in paths {
        let path = absolute(path)?;
        collect_files(&path, &mut files)
            .map_err(|e| usage_error(format!("cannot read `{}`: {e}", path.display())))?;
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads project files from disk, except those `files` holds (paths relative to the
/// project root, as the checker names them): a change checked before it is written.
pub struct OverlaySource<'a> {
    pub disk: DiskSource,
    pub files: &'a BTreeMap<String, String>,
}

impl FileSource for OverlaySource<'_> {
    fn read(&self, path: &str) -> Result<String, ReadError> {
        match self.files.get(path) {
            Some(text) => Ok(text.clone()),
            None => self.disk.read(path),
        }
    }
}

/// Loads and checks the policies under `paths`. A directory that directly holds `.egress`
/// files is one policy. Diagnostics are returned, not printed.
pub fn load_policies(
    paths: &[PathBuf],
    root: Option<&Path>,
) -> Result<Vec<LoadedPolicy>, ExitCode> {
    load_policies_over(paths, root, &BTreeMap::new())
}

/// [`load_policies`], reading the files `overlay` holds (by path relative to the project
/// root) from it instead of from disk. The set of files is still the one on disk.
pub fn load_policies_over(
    paths: &[PathBuf],
    root: Option<&Path>,
    overlay: &BTreeMap<String, String>,
) -> Result<Vec<LoadedPolicy>, ExitCode> {
    load_with(
        paths,
        root,
        overlay,
        egress_check::check_without_editor_data,
    )
}

/// [`load_policies`] for a caller that wants only the diagnostics (`egc check`): no policy
/// is built (`result.policy` is `None`), which takes far less memory on a large policy.
pub fn load_diagnostics(
    paths: &[PathBuf],
    root: Option<&Path>,
) -> Result<Vec<LoadedPolicy>, ExitCode> {
    load_with(
        paths,
        root,
        &BTreeMap::new(),
        egress_check::check_diagnostics,
    )
}

fn load_with(
    paths: &[PathBuf],
    root: Option<&Path>,
    overlay: &BTreeMap<String, String>,
    check: fn(&dyn FileSource, &[String]) -> CheckResult,
) -> Result<Vec<LoadedPolicy>, ExitCode> {
    let files = find_files(paths)?;
    if files.is_empty() {
        return Err(usage_error("no `.egress` files found in the given paths"));
    }
    let absolute_inputs: Vec<PathBuf> = paths
        .iter()
        .map(|p| absolute(p))
        .collect::<Result<_, _>>()?;
    let root = project_root(&absolute_inputs, root)?;
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(rel) = relative(&root, file) else {
            return Err(usage_error(format!(
                "`{}` is outside the project root `{}`",
                file.display(),
                root.display()
            )));
        };
        let dir = rel
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_else(|| ".".into());
        groups.entry(dir).or_default().push(rel);
    }
    let source = OverlaySource {
        disk: DiskSource { root },
        files: overlay,
    };
    Ok(groups
        .into_iter()
        .map(|(dir, roots)| LoadedPolicy {
            dir,
            result: check(&source, &roots),
        })
        .collect())
}

/// 1-based line and column of a span's start and end.
pub fn line_col(result: &CheckResult, span: Span) -> ((usize, usize), (usize, usize)) {
    let Some(file) = result.file(span.file) else {
        return ((1, 1), (1, 1));
    };
    let (l1, c1) = file.line_col(span.start as usize);
    let (l2, c2) = file.line_col(span.end as usize);
    ((l1 + 1, c1 + 1), (l2 + 1, c2 + 1))
}

pub fn file_path(result: &CheckResult, span: Span) -> String {
    result
        .file(span.file)
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

/// Whether to colour output: only on a terminal, and never with `NO_COLOR` set.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Prints the diagnostics of all policies: human to stderr (with a summary line), JSON to
/// stdout. Returns true when any is an error.
pub fn print_diagnostics(policies: &[LoadedPolicy], format: Format) -> bool {
    let has_errors = policies.iter().any(|p| p.result.has_errors());
    match format {
        Format::Human => {
            let color = use_color();
            let mut buffer = Vec::new();
            let (mut errors, mut warnings) = (0, 0);
            for policy in policies {
                crate::render::human::diagnostics(
                    &policy.result,
                    &policy.result.diagnostics,
                    color,
                    &mut buffer,
                );
                errors += policy
                    .result
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .count();
                warnings += policy
                    .result
                    .diagnostics
                    .iter()
                    .filter(|d| !d.is_error())
                    .count();
            }
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&buffer);
            if errors + warnings > 0 {
                let _ = writeln!(stderr, "{errors} error(s), {warnings} warning(s)");
            }
        }
        Format::Json => {
            // Written as it is serialized: a policy with many diagnostics never holds them
            // all as JSON values.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written =
                serde_json::to_writer_pretty(&mut out, &crate::render::json::Diagnostics(policies));
            if written.is_ok() {
                let _ = writeln!(out);
            }
            let _ = out.flush();
        }
        Format::Sarif => {
            let value = crate::render::sarif::diagnostics(policies);
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
    }
    has_errors
}

/// Reads one policy file for commands that work file by file (fmt): size-limited, UTF-8.
pub fn read_policy_file(path: &Path) -> Result<String, ExitCode> {
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    DiskSource { root: parent }.read(name).map_err(|e| {
        usage_error(match e {
            ReadError::NotFound => format!("cannot find `{}`", path.display()),
            ReadError::NotUtf8 => format!("`{}` is not valid UTF-8 text", path.display()),
            ReadError::TooLarge(n) => format!(
                "`{}` is {n} bytes, over the {MAX_FILE_BYTES}-byte limit",
                path.display()
            ),
            ReadError::Io(why) => format!("cannot read `{}`: {why}", path.display()),
        })
    })
}

/// Writes a file atomically: a temporary file beside it, then a rename. A failed run
/// leaves no half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let temporary = dir.join(format!(".{name}.egc-tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Ends the life of `value` without freeing it: the command is about to return and the
/// process to exit, which releases the memory at once, whereas dropping a large policy
/// (every name, set and report) value by value costs milliseconds. Only for what a
/// command holds when it finishes.
pub fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}
