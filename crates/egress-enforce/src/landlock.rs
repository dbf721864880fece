//! Landlock TCP-connect port rules (Landlock ABI >= 4), by raw system calls.
//!
//! The ruleset handles only `LANDLOCK_ACCESS_NET_CONNECT_TCP`: a confined process may
//! open TCP connections only to the listed ports (any address; the eBPF program judges
//! addresses). File system access is not restricted here. A refused connect fails with
//! `EACCES` (Landlock's errno), before the eBPF hook would answer `EPERM`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const SYS_LANDLOCK_ADD_RULE: libc::c_long = 445;
const SYS_LANDLOCK_RESTRICT_SELF: libc::c_long = 446;
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_NET_PORT: u32 = 2;
const LANDLOCK_ACCESS_NET_CONNECT_TCP: u64 = 1 << 1;

/// The first Landlock ABI with network rules.
pub const NET_ABI: i64 = 4;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
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

/// A ruleset descriptor ready for `landlock_restrict_self` in the child.
pub struct PreparedRuleset {
    fd: OwnedFd,
    /// Number of port rules added.
    pub ports: usize,
}

impl PreparedRuleset {
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Builds a ruleset that allows TCP connect only to `ports` (inclusive ranges).
pub fn tcp_connect_ruleset(ports: &[(u16, u16)]) -> io::Result<PreparedRuleset> {
    if abi_version() < NET_ABI {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "Landlock network rules need ABI {NET_ABI}; this kernel has ABI {}",
                abi_version()
            ),
        ));
    }
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: LANDLOCK_ACCESS_NET_CONNECT_TCP,
    };
    // SAFETY: `attr` is a valid struct of the size passed.
    let ret = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(ret).map_err(|_| io::Error::other("bad landlock fd"))?;
    // SAFETY: the kernel just returned this descriptor; we own it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut count = 0usize;
    for (lo, hi) in ports {
        for port in *lo..=*hi {
            let rule = NetPortAttr {
                allowed_access: LANDLOCK_ACCESS_NET_CONNECT_TCP,
                port: u64::from(port),
            };
            // SAFETY: valid descriptor and a valid rule struct.
            let ret = unsafe {
                libc::syscall(
                    SYS_LANDLOCK_ADD_RULE,
                    fd.as_raw_fd(),
                    LANDLOCK_RULE_NET_PORT,
                    &rule as *const NetPortAttr,
                    0u32,
                )
            };
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            count += 1;
        }
    }
    Ok(PreparedRuleset { fd, ports: count })
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
