//! Runtime enforcement for egc: the only crate with privileged or `unsafe` code.
//!
//! - [`rules`]: allow rules and their exact compilation into LPM trie entries (pure).
//! - [`maps`]: lowering a [`egress_check::CheckedPolicy`] agent into [`maps::EbpfMaps`] (pure).
//! - [`layout`]: the byte layout shared with `bpf/egress.bpf.c`.
//! - [`loader`]: load, attach, pin, update, detach (aya + bpf(2)).
//! - [`cgroup`], [`seccomp`], [`sandbox`]: the confined launcher behind `egc run`.
//! - [`exception`]: signed run-time exception tokens and the audit log.
//! - [`memory`]: allocator settings for `egc check` (FFI; enforces nothing).
//! - [`manifest`]: the signed intent manifest binding a reviewed policy to what is enforced (pure).
//!
//! **Architecture invariant:** nothing here fails open. If a layer cannot be applied the
//! caller gets an error, never a weaker sandbox.

pub mod cgroup;
pub mod control;
pub mod exception;
pub mod identity;
pub mod landlock;
pub mod layout;
pub mod loader;
pub mod manifest;
pub mod maps;
pub mod memory;
pub mod names;
pub mod rules;
pub mod run;
pub mod sandbox;
pub mod seccomp;
pub mod state;
pub mod steps;
pub mod sys;
