//! One test binary for the data-driven suites (fewer binaries link faster).

mod docs;
mod roundtrip;
mod ui;
