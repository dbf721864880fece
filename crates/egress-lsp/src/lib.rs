//! The egc language server: LSP over stdio, on top of the IDE layer (`egress-ide`).
//!
//! **Architecture invariant:** this is the only crate that knows LSP types and JSON-RPC.
//! Every answer comes from `egress_ide::Analysis` in plain data and is converted here.
//!
//! Threads: the main loop owns the open buffers. Each request runs on its own thread
//! against an immutable snapshot; its answer is dropped in favour of a `ContentModified`
//! error when the document changed meanwhile, or a `RequestCancelled` error after
//! `$/cancelRequest`. Diagnostics run on one background thread that coalesces edits and
//! drops results that a newer edit made stale. A panic in any handler is caught, logged
//! and answered with an internal error: the server keeps running.

mod convert;
mod handlers;
mod server;

pub use convert::LineIndex;
pub use server::{run, run_stdio, ServerConfig};
