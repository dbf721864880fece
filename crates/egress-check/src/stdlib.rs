//! The stdlib modules, embedded at build time from `stdlib/*.egress`.

include!(concat!(env!("OUT_DIR"), "/stdlib_modules.rs"));
