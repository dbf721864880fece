//! `egc explain CODE`: the long explanation of a diagnostic code.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A diagnostic code such as E0010.
    pub code: String,
}

include!(concat!(env!("OUT_DIR"), "/explanations.rs"));

pub fn run(args: Args) -> ExitCode {
    let code = args.code.trim().to_ascii_uppercase();
    match EXPLANATIONS.iter().find(|(c, _)| *c == code) {
        Some((_, text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            let known: Vec<&str> = egress_syntax::diagnostic::CODES
                .iter()
                .map(|(c, _)| *c)
                .collect();
            crate::common::usage_error(format!(
                "unknown code `{}`; known codes: {}",
                args.code,
                known.join(", ")
            ))
        }
    }
}
