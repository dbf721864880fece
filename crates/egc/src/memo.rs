//! Where `egc verify` keeps what earlier runs proved (`egress_verify::Memo`), so a run
//! after an edit re-verifies only the agents the edit touches.
//!
//! One file per policy directory under the cache directory: `$EGC_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/egc`, else `~/.cache/egc`. A memo only ever says "this agent, on
//! exactly these inputs, was proved" (its keys are content hashes computed by the
//! verifier), so a stale memo costs time, never a wrong verdict. A *forged* memo would be
//! a list of false proofs, so:
//!
//! - every memo file is authenticated: a keyed BLAKE3 MAC over its contents, with a
//!   32-byte secret made on first use and kept apart from the cache, in
//!   `$XDG_STATE_HOME/egc/memo.key` (else `~/.local/state/egc/memo.key`), mode 0600. A
//!   cache directory restored from elsewhere (a CI cache written by a pull request's job)
//!   comes without the key, and its memos are ignored;
//! - the key, the memo directory and the memo file are used only when owned by the user
//!   running `egc` and writable by nobody else; files are opened without following a
//!   symbolic link and checked on the open handle;
//! - a memo written by another `egc` binary (its path, size or modification time) is
//!   ignored;
//! - with `CI` set, no memo is read or written unless `EGC_CACHE_DIR` names one
//!   explicitly; `--no-cache` turns it off everywhere.
//!
//! Reading or writing a memo never fails a run: a memo that cannot be used is ignored,
//! and a memo that cannot be written is not written. A memo is written to a new file and
//! renamed into place, and not rewritten when nothing changed.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use egress_verify::Memo;

const HEADER: &[u8; 16] = b"egc-memo-file/2\n";

/// The memo files of this run.
pub struct MemoStore {
    dir: PathBuf,
    /// This binary's identity: a memo written by another build is not read.
    binary: [u8; 32],
    /// The secret the memo files are authenticated with.
    key: [u8; 32],
}

/// What [`MemoStore::load`] found, so an unchanged memo is not written again.
pub struct Loaded {
    pub memo: Memo,
    bytes: Option<Vec<u8>>,
}

impl MemoStore {
    /// The store this run uses, or `None` when memos are off (or no private key can be
    /// had: then nothing is remembered).
    pub fn from_env(no_cache: bool) -> Option<MemoStore> {
        if no_cache {
            return None;
        }
        let explicit = std::env::var_os("EGC_CACHE_DIR").filter(|v| !v.is_empty());
        let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let home = || std::env::var_os("HOME").map(PathBuf::from);
        let dir = match explicit {
            Some(dir) => PathBuf::from(dir),
            None if in_ci => return None,
            None => match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
                Some(xdg) => PathBuf::from(xdg).join("egc"),
                None => home()?.join(".cache/egc"),
            },
        };
        let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(xdg) => PathBuf::from(xdg).join("egc"),
            None => home()?.join(".local/state/egc"),
        };
        Some(MemoStore {
            dir: dir.join("verify"),
            binary: binary_identity()?,
            key: secret(&state)?,
        })
    }

    fn path(&self, policy: &str) -> PathBuf {
        let digest = blake3::hash(policy.as_bytes());
        let name: String = digest
            .as_bytes()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir.join(format!("{name}.memo"))
    }

    /// The MAC of a memo file's contents.
    fn mac(&self, contents: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, contents).as_bytes()
    }

    /// The memo of `policy` (an identity string of the policy: its absolute directory
    /// and boundary), or an empty one.
    pub fn load(&self, policy: &str) -> Loaded {
        let bytes = private_dir(&self.dir)
            .then(|| read_private(&self.path(policy)))
            .flatten();
        let memo = bytes.as_deref().and_then(|b| self.parse(b));
        Loaded {
            memo: memo.unwrap_or_default(),
            bytes,
        }
    }

    fn parse(&self, bytes: &[u8]) -> Option<Memo> {
        let split = bytes.len().checked_sub(32)?;
        let (contents, mac) = (bytes.get(..split)?, bytes.get(split..)?);
        // Constant time, as a MAC comparison should be.
        if blake3::Hash::from(self.mac(contents))
            != blake3::Hash::from(<[u8; 32]>::try_from(mac).ok()?)
        {
            return None;
        }
        let rest = contents.strip_prefix(HEADER.as_slice())?;
        let rest = rest.strip_prefix(self.binary.as_slice())?;
        Memo::from_bytes(rest)
    }

    fn contents(&self, memo: &Memo) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(HEADER);
        out.extend_from_slice(&self.binary);
        out.extend_from_slice(&memo.to_bytes());
        let mac = self.mac(&out);
        out.extend_from_slice(&mac);
        out
    }

    /// Replaces the memo of `policy` (written whole to a new file, then renamed), unless
    /// it is what was loaded.
    pub fn store(&self, policy: &str, loaded: &Loaded, memo: &Memo) {
        let contents = self.contents(memo);
        if loaded.bytes.as_deref() == Some(contents.as_slice()) {
            return;
        }
        let _ = self.try_store(policy, &contents);
    }

    fn try_store(&self, policy: &str, contents: &[u8]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        if !private_dir(&self.dir) {
            return Ok(());
        }
        let path = self.path(policy);
        // Unique among concurrent runs, also across PID namespaces sharing the directory.
        let nonce = blake3::hash(
            format!(
                "{}-{:?}-{:?}",
                std::process::id(),
                std::time::SystemTime::now(),
                std::thread::current().id()
            )
            .as_bytes(),
        );
        let tmp = path.with_extension(format!("tmp-{}", &nonce.to_hex()[..16]));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        // Only a file this run created is removed on failure.
        let result = file
            .write_all(contents)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Owned by this user and writable by no one else.
fn private(meta: &std::fs::Metadata) -> bool {
    meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// A private directory, not a link.
fn private_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && private(&m))
}

/// A private regular file's bytes, opened without following a link and checked on the
/// open handle.
fn read_private(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !private(&meta) {
        return None;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The secret memo files are authenticated with: read from `state/memo.key`, made there
/// (0600, in a 0700 directory) on first use.
fn secret(state: &Path) -> Option<[u8; 32]> {
    let path = state.join("memo.key");
    if let Some(bytes) = private_dir(state).then(|| read_private(&path)).flatten() {
        return <[u8; 32]>::try_from(bytes.as_slice()).ok();
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .ok()?;
    if !private_dir(state) {
        return None;
    }
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .ok()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path);
    match &mut file {
        Ok(f) => f.write_all(&key).and_then(|()| f.sync_all()).ok()?,
        // Another run made it first: use that one.
        Err(_) => {
            let bytes = read_private(&path)?;
            return <[u8; 32]>::try_from(bytes.as_slice()).ok();
        }
    }
    Some(key)
}

/// This binary's path, size and modification time, hashed.
fn binary_identity() -> Option<[u8; 32]> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mut h = blake3::Hasher::new();
    h.update(exe.as_os_str().as_encoded_bytes());
    h.update(&meta.len().to_le_bytes());
    h.update(&meta.mtime().to_le_bytes());
    h.update(&meta.mtime_nsec().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    Some(*h.finalize().as_bytes())
}
