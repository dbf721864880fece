//! Starting a child process confined by an agent's policy: a new session with no
//! controlling terminal, no inherited descriptors beyond stdio, cgroup (with the eBPF
//! program attached by the caller), capabilities, Landlock and seccomp.
//!
//! Everything that allocates happens in the parent before `fork`; the code that runs in
//! the child between `fork` and `exec` only makes system calls.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use egress_check::LinuxCap;

/// An open `cgroup.procs`: the child writes "0" to it to move itself in before exec.
pub struct CgroupJoin {
    procs: OwnedFd,
}

impl CgroupJoin {
    pub fn open(cgroup: &Path) -> io::Result<CgroupJoin> {
        let file = OpenOptions::new()
            .write(true)
            .open(cgroup.join("cgroup.procs"))?;
        Ok(CgroupJoin {
            procs: OwnedFd::from(file),
        })
    }
}

/// The confinement to apply in the child, prepared in the parent.
#[derive(Default)]
pub struct Confinement {
    pub cgroup: Option<CgroupJoin>,
    /// Linux capabilities the child keeps; every other is dropped from all sets,
    /// including the bounding set (so even a root child cannot regain them).
    pub keep_caps: Option<Vec<LinuxCap>>,
    /// A prepared Landlock ruleset descriptor to enforce.
    pub landlock: Option<crate::landlock::PreparedRuleset>,
    /// A compiled seccomp filter, installed last.
    pub seccomp: Option<seccompiler::BpfProgram>,
    /// Put the child in a new cgroup namespace rooted at its cgroup, so it cannot move
    /// itself out of the cgroup (and out of the eBPF program's reach).
    pub cgroup_namespace: bool,
    /// Run as this (uid, gid) with no supplementary groups. Granted capabilities are
    /// kept across the switch (and exec) as ambient capabilities.
    pub user: Option<(u32, u32)>,
    /// Start a new session (`setsid`): the child has no controlling terminal, so it
    /// cannot push input into the caller's terminal (`TIOCSTI`) or signal its job.
    pub new_session: bool,
    /// Mark every inherited descriptor above stdio close-on-exec, so only stdio and the
    /// descriptors passed on purpose reach the command.
    pub close_inherited: bool,
    /// Pathname unix sockets the child connects to as its final user, before Landlock
    /// and seccomp, each placed at the descriptor number reserved for it.
    pub unix_sockets: Vec<UnixSocketPass>,
    /// Extra seccomp filters, installed before the main one (the most restrictive answer
    /// of all filters wins).
    pub extra_seccomp: Vec<seccompiler::BpfProgram>,
}

/// A pathname unix socket the child connects to and keeps at a fixed descriptor.
pub struct UnixSocketPass {
    /// The path as given in the policy.
    pub path: String,
    address: libc::sockaddr_un,
    address_len: libc::socklen_t,
    /// A descriptor reserved in the parent (open on /dev/null) whose number the
    /// connected socket takes in the child.
    reserved: OwnedFd,
}

impl UnixSocketPass {
    /// Prepares `path` (absolute, shorter than `sun_path`) and reserves a descriptor.
    pub fn new(path: &str) -> io::Result<UnixSocketPass> {
        // SAFETY: sockaddr_un is plain data; zeroed is valid.
        let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        address.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_bytes();
        if !path.starts_with('/') || bytes.contains(&0) || bytes.len() >= address.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unix socket path {path:?}: must be absolute and under 108 bytes"),
            ));
        }
        for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
            *slot = *byte as libc::c_char;
        }
        let address_len =
            (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        let reserved = OwnedFd::from(std::fs::File::open("/dev/null")?);
        Ok(UnixSocketPass {
            path: path.to_string(),
            address,
            address_len,
            reserved,
        })
    }

    /// The descriptor number the command finds the connected socket at.
    pub fn fd(&self) -> i32 {
        self.reserved.as_raw_fd()
    }
}

const PR_CAPBSET_DROP: libc::c_int = 24;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
const LAST_CAP: u32 = 63;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn last_os_error() -> io::Error {
    io::Error::last_os_error()
}

impl Confinement {
    /// Arranges for `command` to be confined when it is spawned.
    pub fn apply_to(self, command: &mut Command) {
        let Confinement {
            cgroup,
            keep_caps,
            landlock,
            seccomp,
            cgroup_namespace,
            user,
            new_session,
            close_inherited,
            unix_sockets,
            extra_seccomp,
        } = self;
        let cgroup_fd = cgroup.map(|c| c.procs);
        let keep_mask: Option<u64> = keep_caps.map(|caps| {
            caps.iter()
                .filter(|c| u32::from(c.0) <= LAST_CAP)
                .fold(0u64, |m, c| m | (1u64 << c.0))
        });
        let landlock_fd = landlock.map(|l| l.into_fd());
        // SAFETY: the closure only performs system calls on data prepared above (no
        // allocation, no locks), which is what `pre_exec` requires after fork.
        unsafe {
            command.pre_exec(move || {
                // The launcher ignores interactive signals while it waits; the child
                // must not inherit that.
                for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(signal, libc::SIG_DFL);
                }
                if close_inherited {
                    // Everything above stdio is closed at exec; the descriptors this
                    // closure still needs stay usable until then.
                    let ret = libc::syscall(
                        libc::SYS_close_range,
                        3u32,
                        u32::MAX,
                        libc::CLOSE_RANGE_CLOEXEC,
                    );
                    if ret != 0 {
                        return Err(last_os_error());
                    }
                }
                if new_session && libc::setsid() < 0 {
                    return Err(last_os_error());
                }
                if let Some(fd) = &cgroup_fd {
                    let ret = libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1);
                    if ret != 1 {
                        return Err(last_os_error());
                    }
                }
                if cgroup_namespace && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                    return Err(last_os_error());
                }
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(last_os_error());
                }
                if let Some(mask) = keep_mask {
                    drop_bounding(mask)?;
                }
                if let Some((uid, gid)) = user {
                    switch_user(uid, gid)?;
                }
                if let Some(mask) = keep_mask {
                    set_caps(mask)?;
                    if user.is_some_and(|(uid, _)| uid != 0) {
                        raise_ambient(mask)?;
                    }
                }
                if let Some(fd) = &landlock_fd {
                    crate::landlock::restrict_self_raw(fd.as_raw_fd())?;
                }
                for socket in &unix_sockets {
                    connect_unix(socket)?;
                }
                // The extra filters allow by default, so they go first: the agent's
                // allowlist may refuse the calls that install a filter.
                for program in extra_seccomp.iter().chain(seccomp.iter()) {
                    seccompiler::apply_filter(program).map_err(|e| match e {
                        seccompiler::Error::Seccomp(io) => io,
                        _ => io::Error::other("seccomp"),
                    })?;
                }
                Ok(())
            });
        }
    }
}

/// Connects to a pathname unix socket (as the child's final user, so the file's
/// permissions are checked for the agent, not for egc) and moves the connection to the
/// reserved descriptor number, without close-on-exec. Async-signal-safe.
fn connect_unix(socket: &UnixSocketPass) -> io::Result<()> {
    // SAFETY: plain system calls on data prepared before fork.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(last_os_error());
        }
        let address = (&socket.address as *const libc::sockaddr_un).cast::<libc::sockaddr>();
        if libc::connect(fd, address, socket.address_len) != 0 {
            let err = last_os_error();
            libc::close(fd);
            return Err(err);
        }
        let target = socket.reserved.as_raw_fd();
        if libc::dup2(fd, target) < 0 {
            return Err(last_os_error());
        }
        libc::close(fd);
    }
    Ok(())
}

/// Switches to `uid`/`gid` with no supplementary groups, keeping the permitted
/// capabilities (PR_SET_KEEPCAPS) so [`set_caps`] can keep the granted ones.
fn switch_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain system calls with integer arguments (setgroups with an empty list).
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(last_os_error());
        }
    }
    Ok(())
}

/// Raises every kept capability into the ambient set, so it survives `exec` for a
/// non-root user.
fn raise_ambient(keep: u64) -> io::Result<()> {
    for cap in 0..=LAST_CAP {
        if keep & (1u64 << cap) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let ret = unsafe {
            libc::prctl(
                PR_CAP_AMBIENT,
                PR_CAP_AMBIENT_RAISE,
                libc::c_ulong::from(cap),
                0,
                0,
            )
        };
        if ret != 0 {
            return Err(last_os_error());
        }
    }
    Ok(())
}

/// Drops every capability not in `keep` from the bounding set (needs CAP_SETPCAP, so
/// it runs before any user switch). Async-signal-safe.
fn drop_bounding(keep: u64) -> io::Result<()> {
    for cap in 0..=LAST_CAP {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let ret = unsafe { libc::prctl(PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if ret != 0 {
            let err = last_os_error();
            // EINVAL: the kernel does not know this capability number; nothing to drop.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Clears the ambient set and keeps only `keep` in the inheritable, permitted and
/// effective sets. Async-signal-safe.
fn set_caps(keep: u64) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let ret = unsafe { libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    if ret != 0 {
        return Err(last_os_error());
    }
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget fills two CapData structs for version 3.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if ret != 0 {
        return Err(last_os_error());
    }
    let low = keep as u32;
    let high = (keep >> 32) as u32;
    for (slot, mask) in data.iter_mut().zip([low, high]) {
        slot.permitted &= mask;
        slot.effective = slot.permitted;
        slot.inheritable = slot.permitted;
    }
    // SAFETY: capset reads two CapData structs for version 3.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if ret != 0 {
        return Err(last_os_error());
    }
    Ok(())
}

/// The user database's entry for `uid`: its primary group and home directory.
pub fn passwd_entry(uid: u32) -> Option<(u32, std::path::PathBuf)> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid initial value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf` (of the length given) only.
    let ret = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if ret != 0 || result.is_null() {
        return None;
    }
    let home = if pwd.pw_dir.is_null() {
        std::path::PathBuf::new()
    } else {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: pw_dir points into `buf`, NUL-terminated by getpwuid_r.
        let dir = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
    };
    Some((pwd.pw_gid, home))
}

/// The primary group of `uid` from the user database (the uid itself when unknown).
pub fn primary_gid(uid: u32) -> u32 {
    passwd_entry(uid).map_or(uid, |(gid, _)| gid)
}
