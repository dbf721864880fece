//! Where `egc verify` keeps what earlier runs proved (`egress_verify::Memo`), so a run
//! after an edit re-verifies only the agents the edit touches.
//!
//! One file per policy directory under the cache directory: `$EGC_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/egc`, else `~/.cache/egc`. A memo only ever says "this agent, on
//! exactly these inputs, was proved" (its keys are content hashes computed by the
//! verifier), so a stale or foreign memo costs time, never a wrong verdict — except one
//! written by someone else: a memo is a list of claimed proofs, so it is read only from a
//! directory and a file owned by the user running `egc` and writable by nobody else, and
//! only when it was written by this very `egc` binary (its path, size and modification
//! time). With `CI` set (a CI job, where a cache may be restored from a less trusted job),
//! no memo is read or written unless `EGC_CACHE_DIR` names one explicitly; `--no-cache`
//! turns it off everywhere.
//!
//! Reading or writing a memo never fails a run: a memo that cannot be used is ignored,
//! and a memo that cannot be written is not written.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use egress_verify::Memo;
use sha2::{Digest, Sha256};

const HEADER: &[u8; 16] = b"egc-memo-file/1\n";

/// The memo files of this run.
pub struct MemoStore {
    dir: PathBuf,
    /// This binary's identity: a memo written by another build is not read.
    binary: [u8; 32],
}

impl MemoStore {
    /// The store this run uses, or `None` when memos are off.
    pub fn from_env(no_cache: bool) -> Option<MemoStore> {
        if no_cache {
            return None;
        }
        let explicit = std::env::var_os("EGC_CACHE_DIR").filter(|v| !v.is_empty());
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let dir = match explicit {
            Some(dir) => PathBuf::from(dir),
            None if in_ci => return None,
            None => match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
                Some(xdg) => PathBuf::from(xdg).join("egc"),
                None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/egc"),
            },
        };
        Some(MemoStore {
            dir: dir.join("verify"),
            binary: binary_identity()?,
        })
    }

    fn path(&self, policy: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(policy.as_bytes());
        let digest = h.finalize();
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.memo"))
    }

    /// The memo of `policy` (an identity string of the policy: its absolute directory
    /// and boundary), or an empty one.
    pub fn load(&self, policy: &str) -> Memo {
        self.try_load(policy).unwrap_or_default()
    }

    fn try_load(&self, policy: &str) -> Option<Memo> {
        let path = self.path(policy);
        if !private(&self.dir) {
            return None;
        }
        let bytes = read_private(&path)?;
        let rest = bytes.strip_prefix(HEADER.as_slice())?;
        let rest = rest.strip_prefix(self.binary.as_slice())?;
        Memo::from_bytes(rest)
    }

    /// Replaces the memo of `policy` (written whole to a new file, then renamed).
    pub fn store(&self, policy: &str, memo: &Memo) {
        let _ = self.try_store(policy, memo);
    }

    fn try_store(&self, policy: &str, memo: &Memo) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        if !private(&self.dir) {
            return Ok(());
        }
        let path = self.path(policy);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(HEADER)?;
            file.write_all(&self.binary)?;
            file.write_all(&memo.to_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Owned by this user and writable by no one else.
fn private(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0)
}

/// A regular file's bytes, if it is private (see [`private`]) and not a link.
fn read_private(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() || !private(path) {
        return None;
    }
    std::fs::read(path).ok()
}

/// This binary's path, size and modification time, hashed.
fn binary_identity() -> Option<[u8; 32]> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mut h = Sha256::new();
    h.update(exe.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(meta.mtime().to_le_bytes());
    h.update(meta.mtime_nsec().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    Some(h.finalize().into())
}
