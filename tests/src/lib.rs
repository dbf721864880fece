//! Shared helpers for the data-driven tests.
