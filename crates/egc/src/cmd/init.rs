//! `egc init [DIR]`: write a starter policy.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::common;

#[derive(clap::Args)]
pub struct Args {
    /// The directory to create the policy in.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

const MAIN: &str = include_str!("init/main.egress");
const APPROVALS: &str = include_str!("init/approvals.egress");

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        return common::usage_error(format!("cannot create `{}`: {e}", args.dir.display()));
    }
    let files = [("main.egress", MAIN), ("approvals.egress", APPROVALS)];
    if !args.force {
        for (name, _) in files {
            let path = args.dir.join(name);
            if path.exists() {
                return common::usage_error(format!(
                    "`{}` already exists; use --force to overwrite",
                    path.display()
                ));
            }
        }
    }
    for (name, text) in files {
        let path = args.dir.join(name);
        if let Err(e) = common::write_atomic(&path, text.as_bytes()) {
            return common::usage_error(format!("cannot write `{}`: {e}", path.display()));
        }
        eprintln!("created {}", path.display());
    }
    eprintln!("next: egc check {0} && egc verify {0}", args.dir.display());
    ExitCode::SUCCESS
}
