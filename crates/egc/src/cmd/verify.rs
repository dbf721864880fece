//! `egc verify PATH...`: prove every property of each policy, or show a counterexample
//! path with a concrete witness.
//!
//! Exit codes: 0 every property verified; 1 any property violated or unknown, or the
//! policy has check errors (nothing is verified then); 2 usage or I/O errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::CheckResult;
use egress_verify::{render, Engine, Report, Verdict, VerifyConfig};

use crate::common::{self, Format};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// Exact set algebra, with Z3 where a host search exceeds its budget.
    Fast,
    /// Z3 for every question.
    Smt,
    /// Both for every question; a disagreement makes the property unknown.
    Both,
}

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories (each directory of `.egress` files is one policy).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Z3's time limit per question, in milliseconds. A question not decided in time
    /// makes its property unknown, and unknown fails.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Which decision procedure answers set questions.
    #[arg(long, value_enum, default_value_t = EngineArg::Fast)]
    pub engine: EngineArg,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Also prove `within-boundary`: everything every agent can reach lies inside this
    /// boundary policy (a file or a directory of `.egress` files).
    #[arg(long, value_name = "BOUNDARY")]
    pub within: Option<PathBuf>,
    /// Also prove `sbom-justified`: capabilities marked `justified_by sbom` reach exactly
    /// the hosts this SBOM declares (CycloneDX 1.5/1.6 or SPDX 2.3 JSON).
    #[arg(long, value_name = "BOM")]
    pub sbom: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let sbom_sources = match crate::cmd::sbom::sources_for_verify(args.sbom.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let boundary = match &args.within {
        Some(path) => match common::load_boundary(path, args.format) {
            Ok(b) => Some((path.clone(), b)),
            Err(code) => return code,
        },
        None => None,
    };
    let mut policies = match common::load_policies(&args.paths, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // A boundary kept below the policies it bounds is not itself a policy to verify.
    if let Some((path, _)) = &boundary {
        match boundary_dir_of(&args, path) {
            Ok(Some((root, dir))) => policies.retain(|p| root.join(&p.dir) != dir),
            Ok(None) => {}
            Err(code) => return code,
        }
    }
    if policies.is_empty() {
        return common::usage_error("no policy to verify besides the boundary");
    }
    // Verification needs a checked policy: with check errors, show them and refuse.
    if policies.iter().any(|p| p.result.policy.is_none()) {
        let failing: Vec<common::LoadedPolicy> = policies
            .into_iter()
            .filter(|p| p.result.policy.is_none())
            .collect();
        common::print_diagnostics(&failing, args.format);
        eprintln!(
            "error: not verified: the policy has check errors; fix them and run `egc verify` again"
        );
        return ExitCode::from(1);
    }
    let config = VerifyConfig {
        timeout_ms: args.timeout,
        engine: match args.engine {
            EngineArg::Fast => Engine::Fast,
            EngineArg::Smt => Engine::Smt,
            EngineArg::Both => Engine::Both,
        },
        ..VerifyConfig::default()
    };
    let started = std::time::Instant::now();
    let mut reports: Vec<(&CheckResult, Report)> = policies
        .iter()
        .filter_map(|p| {
            p.result.policy.as_ref().map(|policy| {
                let report = match boundary
                    .as_ref()
                    .and_then(|(_, b)| b.result.policy.as_ref())
                {
                    Some(b) => egress_verify::verify_within(policy, b, &config),
                    None => egress_verify::verify(policy, &config),
                };
                (&p.result, report)
            })
        })
        .collect();
    if let Some(sources) = &sbom_sources {
        crate::cmd::sbom::add_to_reports(&mut reports, sources);
    }
    let elapsed = started.elapsed();
    let pairs: Vec<(&CheckResult, &Report)> = reports.iter().map(|(c, r)| (*c, r)).collect();
    let verdict = render::overall(&pairs);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&render::json(&pairs)).unwrap_or_default()
            );
        }
        Format::Sarif => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&render::sarif(&pairs)).unwrap_or_default()
            );
        }
        Format::Human => {
            let color = use_color_stdout();
            let mut buffer = Vec::new();
            for (policy, (result, report)) in policies.iter().zip(&reports) {
                render_human(&policy.dir, result, report, color, &mut buffer);
            }
            let agents: usize = reports.iter().map(|(_, r)| r.stats.agents).sum();
            let _ = writeln!(
                buffer,
                "{}: {} policies, {agents} agents, in {:.0?}",
                verdict.as_str(),
                reports.len(),
                elapsed
            );
            let _ = out.write_all(&buffer);
        }
    }
    if verdict == Verdict::Verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The project root of the verified paths and the boundary's directory, both absolute.
fn boundary_dir_of(
    args: &Args,
    boundary: &std::path::Path,
) -> Result<Option<(PathBuf, PathBuf)>, ExitCode> {
    let inputs: Vec<PathBuf> = args
        .paths
        .iter()
        .map(|p| common::absolute_path(p))
        .collect::<Result<_, _>>()?;
    let root = common::project_root(&inputs, args.root.as_deref())?;
    let boundary = common::absolute_path(boundary)?;
    let dir = if boundary.is_dir() {
        boundary
    } else {
        match boundary.parent() {
            Some(p) => p.to_path_buf(),
            None => return Ok(None),
        }
    };
    Ok(Some((root, dir)))
}

/// Colour on stdout: only on a terminal, and never with `NO_COLOR` set.
pub fn use_color_stdout() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// One policy's report for people: each violation as an ariadne report with a label on
/// every step of its path, then warnings, then the property table.
pub fn render_human(
    dir: &str,
    result: &CheckResult,
    report: &Report,
    color: bool,
    out: &mut Vec<u8>,
) {
    use ariadne::{Config, Label, Report as AReport, ReportKind};
    for v in &report.violations {
        let Some(primary) = v.path.last() else {
            continue;
        };
        let path = common::file_path(result, primary.span);
        let mut builder = AReport::build(
            ReportKind::Error,
            (path.clone(), common::char_range(result, primary.span)),
        )
        .with_config(Config::default().with_color(color))
        .with_code(&v.property)
        .with_message(&v.message);
        for (i, node) in v.path.iter().enumerate() {
            builder = builder.with_label(
                Label::new((
                    common::file_path(result, node.span),
                    common::char_range(result, node.span),
                ))
                .with_message(format!("{}. {}", i + 1, node.note))
                .with_order(i32::try_from(i).unwrap_or(i32::MAX)),
            );
        }
        let mut notes = Vec::new();
        if let Some(w) = &v.witness {
            notes.push(format!("witness: {w}"));
        }
        if !v.conditions.is_empty() {
            notes.push(format!("when: {}", v.conditions.join("; ")));
        }
        if !notes.is_empty() {
            builder = builder.with_note(notes.join("\n"));
        }
        let mut sources = ariadne::sources(
            result
                .files
                .iter()
                .map(|f| (f.path.clone(), f.text.to_string())),
        );
        let _ = builder.finish().write(&mut sources, &mut *out);
    }
    common::render_human(result, &report.warnings, color, out);
    let _ = writeln!(out, "policy {dir}: {}", report.verdict.as_str());
    for p in &report.properties {
        let _ = writeln!(out, "  {:<10} {}", p.status.as_str(), p.id);
    }
}
