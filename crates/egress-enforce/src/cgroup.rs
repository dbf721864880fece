//! Locating the cgroup v2 hierarchy, creating cgroups and moving processes into them.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Where egc mounts a cgroup2 hierarchy itself when the host has none mounted.
const FALLBACK_MOUNT: &str = "/run/egc/cgroup2";

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones). Mounts one when none is mounted.
pub fn cgroup2_root() -> io::Result<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        // ... mount_point ... - fstype source options
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        if let Some(mount_point) = left.split_whitespace().nth(4) {
            found.push(PathBuf::from(unescape_mount(mount_point)));
        }
    }
    found.sort_by_key(|p| p.as_os_str().len());
    if let Some(root) = found.into_iter().next() {
        return Ok(root);
    }
    let fallback = PathBuf::from(FALLBACK_MOUNT);
    fs::create_dir_all(&fallback)?;
    crate::sys::mount_cgroup2(&fallback)?;
    Ok(fallback)
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

/// Resolves a cgroup given as a path relative to the cgroup2 root (`/agents/bot` or
/// `agents/bot`) or as an absolute path inside the mounted hierarchy.
pub fn resolve(cgroup: &str) -> io::Result<PathBuf> {
    let root = cgroup2_root()?;
    let given = Path::new(cgroup);
    if given.starts_with(&root) {
        return Ok(given.to_path_buf());
    }
    let mut out = root.clone();
    for component in given.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cgroup path {cgroup:?} may not contain `..`"),
                ))
            }
        }
    }
    Ok(out)
}

/// Creates the cgroup (and its parents) if needed.
pub fn create(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)
}

/// Moves a process into a cgroup.
pub fn move_pid(path: &Path, pid: u32) -> io::Result<()> {
    fs::write(path.join("cgroup.procs"), pid.to_string())
}

/// Processes currently in a cgroup.
pub fn pids(path: &Path) -> io::Result<Vec<u32>> {
    Ok(fs::read_to_string(path.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Removes an (empty) cgroup, retrying briefly while exiting processes leave it.
pub fn remove(path: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..50 {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    last
}
