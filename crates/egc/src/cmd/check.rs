//! `egc check PATH...`: parse, resolve and type-check; report every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::{self, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories (each directory of `.egress` files is one policy).
    /// None: the policies the nearest `egc.toml` names.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The project root; imports may not leave it. Defaults to the nearest directory with
    /// an `egress.toml`, else the current directory.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let paths = match crate::config::paths_or_config(&args.paths, None) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Peak memory over a little speed: a check holds one large value at a time.
    egress_enforce::memory::prefer_low_peak_memory();
    let policies = match common::load_diagnostics(&paths, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let has_errors = common::print_diagnostics(&policies, args.format);
    let summary = (!has_errors && args.format == Format::Human).then(|| {
        let files: usize = policies
            .iter()
            .map(|p| p.result.files.iter().filter(|f| !f.is_stdlib).count())
            .sum();
        (policies.len(), files)
    });
    common::leave_to_exit(policies);
    if has_errors {
        ExitCode::from(1)
    } else {
        if let Some((count, files)) = summary {
            eprintln!("checked {count} policies ({files} files): no errors");
        }
        ExitCode::SUCCESS
    }
}
