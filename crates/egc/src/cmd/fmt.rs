//! `egc fmt [--check] PATH...`: format policies in place, or check that they are formatted.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::LoadedFile;

use crate::common;

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Do not write; exit 1 if any file is not formatted.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> ExitCode {
    let files = match common::find_files(&args.paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut unformatted = 0;
    let mut failed = false;
    for path in files {
        let text = match common::read_policy_file(&path) {
            Ok(t) => t,
            Err(code) => return code,
        };
        match egress_syntax::format::format_source(&text) {
            Ok(formatted) => {
                if formatted == text {
                    continue;
                }
                unformatted += 1;
                if args.check {
                    eprintln!("not formatted: {}", path.display());
                } else if let Err(e) = common::write_atomic(&path, formatted.as_bytes()) {
                    return common::usage_error(format!("cannot write `{}`: {e}", path.display()));
                }
            }
            Err(diagnostics) => {
                failed = true;
                let result = egress_check::CheckResult {
                    files: vec![LoadedFile::new(
                        egress_syntax::FileId(0),
                        path.display().to_string(),
                        text.into(),
                        false,
                    )],
                    diagnostics: diagnostics.clone(),
                    policy: None,
                    symbols: Vec::new(),
                    references: Vec::new(),
                };
                let mut buffer = Vec::new();
                crate::render::human::diagnostics(
                    &result,
                    &diagnostics,
                    common::use_color(),
                    &mut buffer,
                );
                eprint!("{}", String::from_utf8_lossy(&buffer));
            }
        }
    }
    if failed {
        eprintln!("some files have syntax errors and were not formatted");
        return ExitCode::from(1);
    }
    if args.check && unformatted > 0 {
        eprintln!("{unformatted} file(s) need formatting: run `egc fmt`");
        return ExitCode::from(1);
    }
    if !args.check && unformatted > 0 {
        eprintln!("formatted {unformatted} file(s)");
    }
    ExitCode::SUCCESS
}
