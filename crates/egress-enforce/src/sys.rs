//! Thin wrappers over the few system calls no safe crate offers here: bpf(2) link
//! creation, pinning and detaching, statfs/mount for bpffs, and Landlock.
//!
//! Every `unsafe` block states why it is sound. Nothing else in the crate calls raw
//! system calls except the child setup in `sandbox.rs`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_DETACH: libc::c_long = 34;

pub const BPF_CGROUP_INET_EGRESS: u32 = 1;
pub const BPF_CGROUP_INET_SOCK_CREATE: u32 = 2;
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_INET6_CONNECT: u32 = 11;
pub const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
pub const BPF_CGROUP_UDP6_SENDMSG: u32 = 15;
pub const BPF_CGROUP_SOCK_OPS: u32 = 3;
pub const BPF_CGROUP_UDP4_RECVMSG: u32 = 19;
pub const BPF_CGROUP_UDP6_RECVMSG: u32 = 20;
pub const BPF_CGROUP_INET4_GETPEERNAME: u32 = 29;
pub const BPF_CGROUP_INET6_GETPEERNAME: u32 = 30;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// `union bpf_attr` is 144 bytes in current kernels; zero-filled tails are required.
#[repr(C, align(8))]
struct BpfAttr([u8; 160]);

impl BpfAttr {
    fn new() -> BpfAttr {
        BpfAttr([0; 160])
    }
    fn put_u32(&mut self, offset: usize, value: u32) {
        if let Some(slot) = self.0.get_mut(offset..offset + 4) {
            slot.copy_from_slice(&value.to_ne_bytes());
        }
    }
    fn put_u64(&mut self, offset: usize, value: u64) {
        if let Some(slot) = self.0.get_mut(offset..offset + 8) {
            slot.copy_from_slice(&value.to_ne_bytes());
        }
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, zero-initialised buffer at least as large as
    // the kernel's `union bpf_attr`, and we pass its exact size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<BpfAttr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let raw = RawFd::try_from(fd).map_err(|_| io::Error::other("bad fd from bpf(2)"))?;
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `BPF_LINK_CREATE` for a cgroup hook: returns the link descriptor.
pub fn link_create_cgroup(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::new();
    attr.put_u32(0, fd_u32(prog.as_raw_fd())?);
    attr.put_u32(4, fd_u32(cgroup.as_raw_fd())?);
    attr.put_u32(8, attach_type);
    attr.put_u32(12, 0);
    owned(bpf(BPF_LINK_CREATE, &mut attr)?)
}

fn fd_u32(fd: RawFd) -> io::Result<u32> {
    u32::try_from(fd).map_err(|_| io::Error::other("negative file descriptor"))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))
}

/// `BPF_OBJ_PIN`: pins any bpf object descriptor at `path` on a bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let path = c_path(path)?;
    let mut attr = BpfAttr::new();
    attr.put_u64(0, path.as_ptr() as u64);
    attr.put_u32(8, fd_u32(fd.as_raw_fd())?);
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

/// `BPF_OBJ_GET`: opens a pinned object.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    let mut attr = BpfAttr::new();
    attr.put_u64(0, path.as_ptr() as u64);
    owned(bpf(BPF_OBJ_GET, &mut attr)?)
}

/// `BPF_LINK_DETACH`: detaches a link from its cgroup now, whoever else holds it.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = BpfAttr::new();
    attr.put_u32(0, fd_u32(link.as_raw_fd())?);
    bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

/// What the kernel says about a cgroup link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupLinkInfo {
    pub link_id: u32,
    pub prog_id: u32,
    /// 0 once the link was detached (or its cgroup removed).
    pub cgroup_id: u64,
    pub attach_type: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a cgroup link.
pub fn cgroup_link_info(link: BorrowedFd<'_>) -> io::Result<CgroupLinkInfo> {
    // struct bpf_link_info { u32 type; u32 id; u32 prog_id; union { struct { u64
    // cgroup_id; u32 attach_type; } cgroup; ... } } -- the union starts at offset 16.
    let mut info = [0u8; 256];
    let mut attr = BpfAttr::new();
    attr.put_u32(0, fd_u32(link.as_raw_fd())?);
    attr.put_u32(4, info.len() as u32);
    attr.put_u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let u32_at = |o: usize| {
        info.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .unwrap_or(0)
    };
    let u64_at = |o: usize| {
        info.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
            .unwrap_or(0)
    };
    Ok(CgroupLinkInfo {
        link_id: u32_at(4),
        prog_id: u32_at(8),
        cgroup_id: u64_at(16),
        attach_type: u32_at(24),
    })
}

/// Is `path` on a bpf filesystem?
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let path = c_path(path)?;
    // SAFETY: statfs is plain data; zeroed is a valid initial value.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `buf` is a valid out-pointer.
    let ret = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as i64 == BPF_FS_MAGIC)
}

/// Mounts a bpf filesystem at `path` (which must exist).
pub fn mount_bpffs(path: &Path) -> io::Result<()> {
    let target = c_path(path)?;
    let source = c"bpf";
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts a cgroup2 hierarchy at `path` (which must exist).
pub fn mount_cgroup2(path: &Path) -> io::Result<()> {
    let target = c_path(path)?;
    let fstype = c"cgroup2";
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let ret = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `CLOCK_BOOTTIME` in nanoseconds: the clock the program compares exception expiry with.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if ret != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Takes an exclusive advisory lock on an open file (released when it is closed).
pub fn flock_exclusive(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: flock on a valid descriptor we own.
    let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable or `timeout_ms` passes. Returns true when readable.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ret > 0)
}
