//! One test binary for the data-driven suites (fewer binaries link faster).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod docs;
mod roundtrip;
mod ui;
