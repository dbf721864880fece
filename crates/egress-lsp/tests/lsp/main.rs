//! Tests of the language server through real clients: JSON-RPC over stdio, and headless
//! Neovim with the `editors/nvim` plugin. One test binary, so it links once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod client;
mod jsonrpc;
mod neovim;
