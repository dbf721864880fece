//! Tests of the language server through real clients: JSON-RPC over stdio, and headless
//! Neovim with the `editors/nvim` plugin. One test binary, so it links once.

mod client;
mod jsonrpc;
mod neovim;
