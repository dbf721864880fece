//! Kernel tests for egress-enforce (root; see common.rs). One test binary.

mod common;
mod enforce;
mod exception;
mod run;
