//! `egress-lsp`: the egc language server as its own binary (the same server as
//! `egc lsp`), so the server's tests can start it without building the whole CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    let verbose = std::env::args().any(|a| a == "--verbose" || a == "-v");
    match egress_lsp::run_stdio(egress_lsp::ServerConfig { verbose }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("egress-lsp: {error}");
            ExitCode::from(2)
        }
    }
}
