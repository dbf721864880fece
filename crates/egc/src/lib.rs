//! The library behind the `egc` binary: subcommands ([`cmd`]) and what they share
//! ([`common`]: loading policies from disk, output formats; [`render`]: every output form).
//! It is a library so the data-driven tests render diagnostics exactly as users see them.

pub mod baseline;
pub mod cmd;
pub mod common;
pub mod config;
pub mod gitsource;
pub mod memo;
pub mod progress;
pub mod render;
pub mod testfile;
