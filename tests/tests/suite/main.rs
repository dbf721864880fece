//! Whole-corpus checks: formatter round trips and the documentation's code blocks. The
//! per-case suites (`tests/ui` and the others) are trials of the `cases` binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod docs;
mod roundtrip;
