//! The egc verifier.
//!
//! **API boundary:** [`sets`] is pure and solver-free; other crates may use it.

pub mod sets;
