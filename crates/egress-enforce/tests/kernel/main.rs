//! Kernel tests for egress-enforce (root; see common.rs). One test binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod enforce;
mod exception;
mod names;
mod run;
mod steps;
