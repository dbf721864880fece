//! How the `egc` process holds memory. Here because it calls the allocator and the
//! kernel through FFI (this is the only crate with `unsafe`); it enforces nothing.

use std::os::raw::{c_int, c_long};

/// mimalloc's option numbers (`mi_option_e` in mimalloc v3's `include/mimalloc.h`; the
/// `libmimalloc-sys` crate names only some of them). `tests::option_numbers` checks them
/// against the options' defaults, so a new mimalloc with other numbers fails a test
/// instead of changing the wrong option.
const PURGE_DELAY: c_int = 15;
const ALLOW_THP: c_int = 43;

/// For a short run whose peak memory matters more than a little speed (`egc check` on a
/// large policy, which holds one large value at a time): the allocator returns freed
/// memory to the system at once rather than after a delay, and the process uses no
/// transparent huge pages (a 2 MiB page is counted whole once touched). Measured on
/// `egc check` of a 10 MB policy (release, whole process): peak RSS 75 MiB → 36 MiB,
/// wall 0.12 s → 0.16 s. Best effort: a failure changes only memory use. Call it on the
/// main thread before other threads start (mimalloc's options are not synchronised); it
/// overrides `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ALLOW_THP` from the environment.
pub fn prefer_low_peak_memory() {
    // SAFETY: `mi_option_set` only stores an option value (mimalloc reads options at each
    // use; both are plain integers and 0 is valid for both).
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0 as c_long);
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0 as c_long);
    }
    // mimalloc applies `allow_thp` with this call when it starts, which has happened.
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers name the options meant: their defaults (mimalloc v3: a purge delay of
    /// 1000 ms, transparent huge pages allowed) and those of options around them match.
    #[test]
    fn option_numbers() {
        if std::env::vars().any(|(k, _)| k.starts_with("MIMALLOC_")) {
            return; // Defaults changed from outside.
        }
        // SAFETY: reading an option has no precondition.
        let get = |o: c_int| unsafe { libmimalloc_sys::mi_option_get(o) };
        assert_eq!(get(PURGE_DELAY), 1000, "purge_delay");
        assert_eq!(get(ALLOW_THP), 1, "allow_thp");
        // Options on both sides with distinctive defaults: os_tag (18) is 100,
        // retry_on_oom (27) is 400, generic_collect (34) is 10000.
        assert_eq!(get(18), 100, "os_tag");
        assert_eq!(get(27), 400, "retry_on_oom");
        assert_eq!(get(34), 10000, "generic_collect");
        prefer_low_peak_memory();
        assert_eq!(get(PURGE_DELAY), 0);
        assert_eq!(get(ALLOW_THP), 0);
        // SAFETY: PR_GET_THP_DISABLE takes no pointer.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
