//! One module per subcommand.

pub mod build;
pub mod check;
pub mod diff;
pub mod enforce;
pub mod exception;
pub mod explain;
pub mod fmt;
pub mod graph;
pub mod init;
pub mod lsp;
pub mod manifest;
pub mod query;
pub mod run;
pub mod sbom;
pub mod suggest;
pub mod test;
pub mod verify;
pub mod workflow;
