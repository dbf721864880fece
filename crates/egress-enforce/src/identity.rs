//! Code identity: an agent that declares `executable "sha256:..."` digests is started by
//! `egc run` only when the command's program hashes to one of them and, when the program
//! is an interpreter, so does the script named on the command line.
//!
//! What this proves: the bytes of the program (and script) that start are the reviewed
//! ones. What it does not: an interpreter can load other code (modules, `-c` strings,
//! `eval`, files it downloads within the policy), so pin the interpreter *and* the script,
//! and treat the agent's dependencies as part of what was reviewed (see the supply-chain
//! chapter). The check hashes the files just before the command starts; a process that
//! can rewrite them in that instant could swap them, which the agent itself cannot do
//! since it is not running yet.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::manifest::digest;

/// Program names treated as interpreters: their first non-option argument is the script.
const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "node", "nodejs", "deno", "bun", "bash", "sh", "dash", "zsh",
    "ksh", "perl", "ruby", "php", "lua", "Rscript", "java",
];

/// A file that was checked, with its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub path: PathBuf,
    pub digest: String,
}

/// Finds `program` like `execvp` does.
pub fn resolve(program: &OsStr) -> Option<PathBuf> {
    let path = Path::new(program);
    if program.to_string_lossy().contains('/') {
        return std::fs::canonicalize(path).ok();
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::canonicalize(found).ok())
}

fn is_interpreter(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `python3.11` counts as `python3`.
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.contains(&name.as_str()) || INTERPRETERS.contains(&base)
}

fn hash_file(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|bytes| digest(&bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Checks the command against the allowed digests (none: nothing to check).
pub fn check(
    allowed: &[String],
    program: &OsStr,
    args: &[OsString],
) -> Result<Vec<Checked>, String> {
    if allowed.is_empty() {
        return Ok(Vec::new());
    }
    let path = resolve(program)
        .ok_or_else(|| format!("cannot find the program `{}`", program.to_string_lossy()))?;
    let program_digest = hash_file(&path)?;
    if !allowed.contains(&program_digest) {
        return Err(format!(
            "{} hashes to {program_digest}, which is not among the agent's `executable` digests",
            path.display()
        ));
    }
    let mut checked = vec![Checked {
        path: path.clone(),
        digest: program_digest,
    }];
    if is_interpreter(&path) {
        let script = args
            .iter()
            .find(|a| !a.to_string_lossy().starts_with('-'))
            .ok_or_else(|| {
                format!(
                    "{} is an interpreter and no script file is named on the command line (code given with `-c` or on stdin cannot be pinned)",
                    path.display()
                )
            })?;
        if args.iter().take_while(|a| *a != script).any(|a| {
            matches!(
                a.to_string_lossy().as_ref(),
                "-c" | "-e" | "-m" | "--eval" | "-r"
            )
        }) {
            return Err(format!(
                "{} is given code on its command line (`-c`, `-e`, `-m`): only a script file can be pinned",
                path.display()
            ));
        }
        let script_path = std::fs::canonicalize(script)
            .map_err(|e| format!("the script {}: {e}", script.to_string_lossy()))?;
        let script_digest = hash_file(&script_path)?;
        if !allowed.contains(&script_digest) {
            return Err(format!(
                "the script {} hashes to {script_digest}, which is not among the agent's `executable` digests",
                script_path.display()
            ));
        }
        checked.push(Checked {
            path: script_path,
            digest: script_digest,
        });
    }
    Ok(checked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_recognised_with_versions() {
        assert!(is_interpreter(Path::new("/usr/bin/python3.11")));
        assert!(is_interpreter(Path::new("/usr/bin/bash")));
        assert!(!is_interpreter(Path::new("/usr/bin/curl")));
    }

    #[test]
    fn a_program_and_its_script_must_both_be_pinned() {
        let dir = std::env::temp_dir().join(format!("egc-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("agent.sh");
        std::fs::write(&script, "echo hi\n").unwrap();
        let sh = resolve(OsStr::new("sh")).unwrap();
        let sh_digest = hash_file(&sh).unwrap();
        let script_digest = hash_file(&script).unwrap();
        let args = vec![OsString::from(&script)];
        // Both pinned: allowed.
        let both = vec![sh_digest.clone(), script_digest.clone()];
        assert_eq!(check(&both, OsStr::new("sh"), &args).unwrap().len(), 2);
        // The script changed: refused.
        std::fs::write(&script, "echo changed\n").unwrap();
        assert!(check(&both, OsStr::new("sh"), &args).is_err());
        // Code on the command line: refused.
        let inline = vec![OsString::from("-c"), OsString::from("echo hi")];
        assert!(check(&both, OsStr::new("sh"), &inline).is_err());
        // The interpreter alone is not pinned: refused.
        assert!(check(&[script_digest], OsStr::new("sh"), &args).is_err());
        // No digests declared: nothing to check.
        assert!(check(&[], OsStr::new("sh"), &args).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
