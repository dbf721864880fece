//! `egc`: the command line. The only crate that reads files, renders diagnostics and
//! picks output formats.
//!
//! Each subcommand lives in `cmd/NAME.rs` with a `clap::Args` struct and a `run` function.
//! Exit codes everywhere: 0 clean, 1 policy errors (or a violated/unknown property),
//! 2 usage or I/O errors.

use egc::cmd;

/// mimalloc: `egc check` and `egc verify` allocate many small values (the syntax tree,
/// the model); with glibc's allocator a third of `egc check`'s time was malloc and free
/// (10 MB policy: 0.80 s → 0.49 s). The sandbox's `pre_exec` code allocates only on its
/// error path (an `io::Error` for a failed seccomp install), as it did with glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "egc",
    version,
    about = "Policy-as-code for what AI agents may reach on the network: check, verify, build.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve and type-check policies; report every problem.
    Check(cmd::check::Args),
    /// Lower policies to Kubernetes, Cilium, seccomp and nftables artifacts, proven faithful.
    Build(cmd::build::Args),
    /// Show which agent can now reach what it could not before, with witnesses.
    Diff(cmd::diff::Args),
    /// Format policies (keeps every comment).
    Fmt(cmd::fmt::Args),
    /// Draw who can reach what (DOT, Mermaid or SVG), violating paths in red.
    Graph(cmd::graph::Args),
    /// Print the long explanation of a diagnostic code.
    Explain(cmd::explain::Args),
    /// Write a starter policy into a directory.
    Init(cmd::init::Args),
    /// Run the language server (LSP over stdin/stdout) for editors.
    Lsp(cmd::lsp::Args),
    /// Prove that no path lets an agent reach what its approvals do not allow.
    Verify(cmd::verify::Args),
    /// Ask whether an agent may open one connection, and by which path.
    Query(cmd::query::Args),
    /// Run the policy tests (`tests/*.egtest` beside each policy): expectations of reach.
    Test(cmd::test::Args),
    /// Enforce an agent's policy at the socket on a cgroup (eBPF): apply, status, detach, events.
    Enforce(cmd::enforce::Args),
    /// Run a command confined by an agent's policy (cgroup + eBPF, seccomp, capabilities, Landlock).
    Run(cmd::run::Args),
    /// Time-bound signed exceptions at run time: keygen, grant, apply, log.
    Exception(cmd::exception::Args),
    /// Destinations from an SBOM's declared hosts (`import`), and what a bump changes (`diff`).
    Sbom(cmd::sbom::Args),
    /// Check a signed build (`egc build --sign`) against its intent manifest.
    Manifest(cmd::manifest::Args),
    /// Workflow steps granted by the orchestrator: grant a signed step token.
    Workflow(cmd::workflow::Args),
    /// Propose the smallest policy change that allows denied run-time events, as a diff.
    Suggest(cmd::suggest::Args),
}

fn main() -> ExitCode {
    // A bare `egc build` takes its policies, targets and output from `egc.toml`.
    let args = egc::config::expand_build_args(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Fmt(args) => cmd::fmt::run(args),
        Command::Graph(args) => cmd::graph::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Init(args) => cmd::init::run(args),
        Command::Lsp(args) => cmd::lsp::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Query(args) => cmd::query::run(args),
        Command::Test(args) => cmd::test::run(args),
        Command::Enforce(args) => cmd::enforce::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Exception(args) => cmd::exception::run(args),
        Command::Manifest(args) => cmd::manifest::run(args),
        Command::Workflow(args) => cmd::workflow::run(args),
        Command::Sbom(args) => cmd::sbom::run(args),
        Command::Suggest(args) => cmd::suggest::run(args),
    }
}
