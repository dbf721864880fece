//! `egc lsp`: the language server, speaking LSP over stdin/stdout.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Log each request and its duration to stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Accepted for clients that pass it (VS Code's language client does); stdio is the
    /// only transport.
    #[arg(long, hide = true)]
    pub stdio: bool,
}

pub fn run(args: Args) -> ExitCode {
    let config = egress_lsp::ServerConfig {
        verbose: args.verbose,
    };
    match egress_lsp::run_stdio(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("egc lsp: {error}");
            ExitCode::from(2)
        }
    }
}
