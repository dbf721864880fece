//! Landlock, by raw system calls, at every ABI the kernel has.
//!
//! One ruleset confines an `egc run` child:
//!
//! | ABI | what it adds |
//! | --- | --- |
//! | 1 | the domain itself: the child can no longer ptrace, or open `/proc/PID/mem` of, any process outside it (other processes of the same user included); file-system write rules: it may write only beneath the paths it is given (the work directory, `/tmp`, the null devices), so it cannot edit `~/.bashrc`, the audit log, the ledger, bpffs pins or cgroup files |
//! | 2 | renaming or linking files across directories (`REFER`) is handled too |
//! | 3 | truncation is handled too |
//! | 4 | TCP connect is allowed only to the policy's ports (the eBPF program judges addresses) |
//! | 5 | device ioctls are handled too |
//! | 6 | abstract unix sockets and signals are scoped: it cannot connect to an abstract socket or signal a process outside the domain |
//!
//! Reads and execution are not restricted: reading files is not a way out of the host
//! (the network layers hold that), and the agent must run its own code.
//!
//! A refused access fails with `EACCES` (Landlock's errno).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
const LANDLOCK_RULE_NET_PORT: u32 = 2;
const LANDLOCK_ACCESS_NET_CONNECT_TCP: u64 = 1 << 1;

// File-system access rights (include/uapi/linux/landlock.h).
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;

const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// The first ABI with each feature.
pub const FS_ABI: i64 = 1;
pub const NET_ABI: i64 = 4;
pub const SCOPE_ABI: i64 = 6;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// The Landlock ABI version of the running kernel (0 when Landlock is unavailable).
pub fn abi_version() -> i64 {
    // SAFETY: the documented version query: NULL attr, size 0, VERSION flag.
    let ret = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        0
    } else {
        ret
    }
}

/// The write-like file-system rights an ABI knows.
fn fs_write_rights(abi: i64) -> u64 {
    let mut rights = FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= FS_IOCTL_DEV;
    }
    rights
}

/// Rights that apply to a file (not a directory).
const FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;

/// What the ruleset should contain.
#[derive(Clone, Debug, Default)]
pub struct LandlockRequest {
    /// Use at most this ABI (a lower one than the kernel's, to behave as on an older
    /// kernel); `None`: the kernel's.
    pub max_abi: Option<i64>,
    /// Paths the child may write beneath (directories) or write (files).
    pub writable: Vec<PathBuf>,
    /// TCP ports the child may connect to (inclusive ranges; used from ABI 4).
    pub tcp_ports: Vec<(u16, u16)>,
}

/// A ruleset descriptor ready for `landlock_restrict_self` in the child.
pub struct PreparedRuleset {
    fd: OwnedFd,
    /// The ABI the ruleset was built for.
    pub abi: i64,
    /// Number of TCP port rules added (`None` below ABI 4: ports are not handled).
    pub ports: Option<usize>,
    /// Paths given write access.
    pub writable: Vec<PathBuf>,
    /// Whether abstract unix sockets and signals are scoped (ABI 6).
    pub scoped: bool,
}

impl PreparedRuleset {
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

fn add_rule<T>(fd: &OwnedFd, rule_type: u32, rule: &T) -> io::Result<()> {
    // SAFETY: valid descriptor and a valid rule struct of the type named.
    let ret = unsafe {
        libc::syscall(
            SYS_LANDLOCK_ADD_RULE,
            fd.as_raw_fd(),
            rule_type,
            rule as *const T,
            0u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: a valid C string; O_PATH opens without reading.
    let raw = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Builds the ruleset for the kernel's ABI (or `max_abi`, when lower). Fails when the
/// kernel has no Landlock at all.
pub fn prepare(request: &LandlockRequest) -> io::Result<PreparedRuleset> {
    let kernel = abi_version();
    let abi = request.max_abi.map_or(kernel, |m| m.min(kernel));
    if abi < FS_ABI {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this kernel has no Landlock (ABI {kernel})"),
        ));
    }
    let write_rights = fs_write_rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: write_rights,
        handled_access_net: if abi >= NET_ABI {
            LANDLOCK_ACCESS_NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= SCOPE_ABI {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // Below ABI 4 the kernel knows only the first field; below 6 the first two.
    let size = if abi >= SCOPE_ABI {
        std::mem::size_of::<RulesetAttr>()
    } else if abi >= NET_ABI {
        16
    } else {
        8
    };
    // SAFETY: `attr` is a valid struct at least `size` bytes long.
    let ret = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(ret).map_err(|_| io::Error::other("bad landlock fd"))?;
    // SAFETY: the kernel just returned this descriptor; we own it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut writable = Vec::new();
    for path in &request.writable {
        let Ok(target) = open_path(path) else {
            // A path that does not exist cannot be written beneath anyway.
            continue;
        };
        let is_dir = std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
        let allowed = if is_dir {
            write_rights
        } else {
            write_rights & FILE_RIGHTS
        };
        add_rule(
            &fd,
            LANDLOCK_RULE_PATH_BENEATH,
            &PathBeneathAttr {
                allowed_access: allowed,
                parent_fd: target.as_raw_fd(),
            },
        )
        .map_err(|e| io::Error::new(e.kind(), format!("rule for {}: {e}", path.display())))?;
        writable.push(path.clone());
    }

    let ports = if abi >= NET_ABI {
        let mut count = 0usize;
        for (lo, hi) in &request.tcp_ports {
            for port in *lo..=*hi {
                add_rule(
                    &fd,
                    LANDLOCK_RULE_NET_PORT,
                    &NetPortAttr {
                        allowed_access: LANDLOCK_ACCESS_NET_CONNECT_TCP,
                        port: u64::from(port),
                    },
                )?;
                count += 1;
            }
        }
        Some(count)
    } else {
        None
    };
    Ok(PreparedRuleset {
        fd,
        abi,
        ports,
        writable,
        scoped: abi >= SCOPE_ABI,
    })
}

/// `landlock_restrict_self`; async-signal-safe (for `pre_exec`). Needs no_new_privs.
pub fn restrict_self_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: a plain system call on a descriptor.
    let ret = unsafe { libc::syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0u32) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_rights_grow_with_the_abi() {
        assert_eq!(fs_write_rights(1) & FS_REFER, 0);
        assert_ne!(fs_write_rights(2) & FS_REFER, 0);
        assert_ne!(fs_write_rights(3) & FS_TRUNCATE, 0);
        assert_ne!(fs_write_rights(5) & FS_IOCTL_DEV, 0);
        assert_eq!(
            fs_write_rights(7) & (FS_READ_FILE | FS_EXECUTE | (1 << 3)),
            0
        );
    }
}
