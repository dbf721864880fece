//! `egc.toml`: what `egc verify`, `egc test`, `egc check` and `egc build` do when they are
//! given no path. It lives at a repository's root; `egc` finds the nearest one upwards
//! from the current directory. Paths in it are relative to its directory.
//!
//! ```toml
//! # The boundary every policy below must stay inside, unless a policy names its own.
//! boundary = "org/boundary"
//! # Accepted risks (`egc verify --baseline`).
//! baseline = "egress-baseline.toml"
//! # Policies, each a directory of `.egress` files (or one file).
//! policies = ["agents/billing", "agents/support"]
//!
//! [[policy]]
//! path = "agents/reporting"
//! boundary = "org/reporting-boundary"
//!
//! [build]
//! targets = ["k8s", "seccomp"]
//! out = "build/egress"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file name `egc` looks for.
pub const FILE_NAME: &str = "egc.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
    boundary: Option<String>,
    baseline: Option<String>,
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    path: String,
    boundary: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    #[serde(default)]
    targets: Vec<String>,
    out: String,
}

/// One policy the configuration names, with the boundary it is verified within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    pub path: PathBuf,
    pub boundary: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildConfig {
    /// Target names as `egc build --target` takes them; empty means all.
    pub targets: Vec<String>,
    pub out: PathBuf,
}

/// A parsed `egc.toml`, its paths joined to its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file itself.
    pub file: PathBuf,
    pub policies: Vec<PolicyEntry>,
    pub baseline: Option<PathBuf>,
    pub build: Option<BuildConfig>,
}

impl Config {
    /// Every policy path, in the order written.
    pub fn policy_paths(&self) -> Vec<PathBuf> {
        self.policies.iter().map(|p| p.path.clone()).collect()
    }

    /// The policies grouped by boundary, each group in the order written (first
    /// appearance of its boundary).
    pub fn groups(&self) -> Vec<(Vec<PathBuf>, Option<PathBuf>)> {
        let mut groups: Vec<(Vec<PathBuf>, Option<PathBuf>)> = Vec::new();
        for p in &self.policies {
            match groups.iter_mut().find(|(_, b)| *b == p.boundary) {
                Some((paths, _)) => paths.push(p.path.clone()),
                None => groups.push((vec![p.path.clone()], p.boundary.clone())),
            }
        }
        groups
    }
}

/// Parses the text of `egc.toml` found in directory `dir`.
pub fn parse(text: &str, file: &Path) -> Result<Config, String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let raw: RawConfig = toml::from_str(text).map_err(|e| format!("`{}`: {e}", file.display()))?;
    let join = |p: &str| dir.join(p);
    let mut policies: Vec<PolicyEntry> = raw
        .policies
        .iter()
        .map(|p| PolicyEntry {
            path: join(p),
            boundary: raw.boundary.as_deref().map(join),
        })
        .collect();
    policies.extend(raw.policy.iter().map(|p| PolicyEntry {
        path: join(&p.path),
        boundary: p.boundary.as_deref().or(raw.boundary.as_deref()).map(join),
    }));
    if policies.is_empty() {
        return Err(format!(
            "`{}` names no policy: add `policies = [\"DIR\"]`",
            file.display()
        ));
    }
    Ok(Config {
        file: file.to_path_buf(),
        policies,
        baseline: raw.baseline.as_deref().map(join),
        build: raw.build.map(|b| BuildConfig {
            targets: b.targets,
            out: join(&b.out),
        }),
    })
}

/// The nearest `egc.toml` at or above `start`.
pub fn find(start: &Path) -> Option<PathBuf> {
    let mut probe = Some(start);
    while let Some(dir) = probe {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        probe = dir.parent();
    }
    None
}

/// Finds and parses the nearest `egc.toml` above the current directory. `Ok(None)` when
/// there is none. Paths in the result are relative to the current directory when the file
/// is below it, so messages show short paths.
pub fn load() -> Result<Option<Config>, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let Some(file) = find(&cwd) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let shown = file
        .strip_prefix(&cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| file.clone());
    parse(&text, &shown).map(Some)
}

/// `egc build` given no path: the arguments `egc.toml` supplies, or `None` to leave the
/// command line as it is. Only a bare `egc build` (options allowed, no path and no
/// `--out`) is expanded.
pub fn expand_build_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_build = args.get(1).is_some_and(|a| a == "build");
    if !is_build {
        return args;
    }
    let rest: Vec<&std::ffi::OsString> = args.iter().skip(2).collect();
    // Options of `egc build` that take a value in the next argument.
    const WITH_VALUE: [&str; 5] = ["--format", "--root", "--cilium-version", "--sign", "--sbom"];
    let mut has_path = false;
    let mut skip_next = false;
    for a in &rest {
        let a = a.to_string_lossy();
        if skip_next {
            skip_next = false;
        } else if WITH_VALUE.contains(&a.as_ref()) {
            skip_next = true;
        } else if !a.starts_with('-') {
            has_path = true;
        }
    }
    let has_out_or_target = rest.iter().any(|a| {
        let a = a.to_string_lossy();
        a.starts_with("--out") || a.starts_with("--target")
    });
    let help = rest.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--help" || a == "-h"
    });
    if has_path || has_out_or_target || help {
        return args;
    }
    let Ok(Some(config)) = load() else {
        return args;
    };
    let Some(build) = &config.build else {
        return args;
    };
    let mut out = args;
    out.extend(config.policy_paths().into_iter().map(Into::into));
    out.push("--out".into());
    out.push(build.out.clone().into());
    if !build.targets.is_empty() {
        out.push("--target".into());
        out.push(build.targets.join(",").into());
    }
    out
}

/// The paths a command was given, else the policies of the nearest `egc.toml`, else
/// `fallback` (`None`: a usage error).
pub fn paths_or_config(
    paths: &[PathBuf],
    fallback: Option<&str>,
) -> Result<Vec<PathBuf>, std::process::ExitCode> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    match load() {
        Ok(Some(config)) => Ok(config.policy_paths()),
        Ok(None) => match fallback {
            Some(path) => Ok(vec![PathBuf::from(path)]),
            None => Err(crate::common::usage_error(
                "no input: give policy files or directories, or name them in an `egc.toml`",
            )),
        },
        Err(e) => Err(crate::common::usage_error(e)),
    }
}
