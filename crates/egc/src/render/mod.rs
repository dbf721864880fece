//! Every output format in one place: [`human`] (ariadne), [`json`] and [`sarif`], for
//! check diagnostics and verify reports alike. The verifier and the checker answer in plain
//! data with spans; only this module turns them into text.

pub mod human;
pub mod json;
pub mod sarif;
