//! `egc sbom import BOM [--out FILE]` and `egc sbom diff OLD NEW POLICY`: destinations
//! from the hosts an SBOM declares (CycloneDX 1.5/1.6, SPDX 2.3 JSON), and what a
//! dependency bump changes in them.
//!
//! Exit codes: 0 done (findings are printed to stderr and do not fail); 1 `diff` found a
//! change; 2 usage or I/O errors, or a document that is not an SBOM egc reads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_sbom::{Declared, Format, ImportConfig, Sbom};

use crate::common;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write an `.egress` module with one destination per host and port the SBOM declares.
    Import(ImportArgs),
    /// Show the change a dependency bump makes to the imported module, as a unified diff.
    Diff(DiffArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// A CycloneDX 1.5/1.6 or SPDX 2.3 JSON SBOM.
    pub bom: PathBuf,
    /// Write the module here instead of to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The capability that connects to every declared source (marked `justified_by sbom`).
    #[arg(long, default_value = "fetch_sbom_sources")]
    pub capability: String,
    /// Print the findings (components without a usable location) as JSON on stderr.
    #[arg(long)]
    pub findings_json: bool,
}

#[derive(clap::Args)]
pub struct DiffArgs {
    /// The SBOM the module was imported from.
    pub old: PathBuf,
    /// The SBOM after the dependency bump.
    pub new: PathBuf,
    /// The module `egc sbom import OLD` wrote.
    pub policy: PathBuf,
    /// The capability name the module was imported with.
    #[arg(long, default_value = "fetch_sbom_sources")]
    pub capability: String,
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Import(a) => import(a),
        Command::Diff(a) => diff(a),
    }
}

/// Reads and parses an SBOM, and the sources it declares.
pub fn load(path: &Path) -> Result<(Sbom, Declared), ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| common::usage_error(format!("cannot read {}: {e}", path.display())))?;
    let sbom = egress_sbom::parse(&text)
        .map_err(|e| common::usage_error(format!("{}: {e}", path.display())))?;
    let declared = egress_sbom::declared(&sbom);
    Ok((sbom, declared))
}

/// The declared sources as the verifier takes them.
pub fn verifier_sources(declared: &Declared) -> Vec<egress_verify::sbom::DeclaredSource> {
    use egress_sets::Target;
    declared
        .sources
        .iter()
        .map(|(source, justifications)| {
            let mut components: Vec<String> =
                justifications.iter().map(|j| j.component.clone()).collect();
            components.sort();
            components.dedup();
            egress_verify::sbom::DeclaredSource {
                target: match &source.host {
                    egress_sbom::SourceHost::Name(n) => Target::Host(n.clone()),
                    egress_sbom::SourceHost::Ip(a) => Target::Ip(*a),
                },
                port: source.port,
                components,
            }
        })
        .collect()
}

fn print_findings(path: &Path, declared: &Declared, json: bool) {
    if json {
        let list: Vec<serde_json::Value> = declared
            .findings
            .iter()
            .map(|f| {
                let (kind, url, reason) = match &f.kind {
                    egress_sbom::FindingKind::NoLocation => ("no-location", None, None),
                    egress_sbom::FindingKind::Unusable { url, reason } => {
                        ("unusable-location", Some(url.clone()), Some(reason.clone()))
                    }
                };
                serde_json::json!({
                    "component": f.component,
                    "kind": kind,
                    "url": url,
                    "reason": reason,
                })
            })
            .collect();
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        for f in &declared.findings {
            eprintln!("finding: {}: {f}", path.display());
        }
    }
}

fn import(args: ImportArgs) -> ExitCode {
    let (sbom, declared) = match load(&args.bom) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let config = ImportConfig {
        capability: args.capability,
    };
    let module = match egress_sbom::import_module(sbom.format, &declared, &config) {
        Ok(m) => m,
        Err(e) => return common::usage_error(e),
    };
    print_findings(&args.bom, &declared, args.findings_json);
    match &args.out {
        Some(out) => {
            if let Err(e) = common::write_atomic(out, module.as_bytes()) {
                return common::usage_error(format!("cannot write {}: {e}", out.display()));
            }
            eprintln!(
                "wrote {} destinations from {} to {}",
                declared.sources.len(),
                sbom.format.as_str(),
                out.display()
            );
        }
        None => {
            let _ = std::io::stdout().lock().write_all(module.as_bytes());
        }
    }
    ExitCode::SUCCESS
}

fn diff(args: DiffArgs) -> ExitCode {
    let (old, old_declared) = match load(&args.old) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (new, new_declared) = match load(&args.new) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let current = match std::fs::read_to_string(&args.policy) {
        Ok(t) => t,
        Err(e) => {
            return common::usage_error(format!("cannot read {}: {e}", args.policy.display()))
        }
    };
    let config = ImportConfig {
        capability: args.capability,
    };
    let path = args.policy.display().to_string();
    let formats: (Format, Format) = (old.format, new.format);
    let change = match egress_sbom::diff_module(
        (formats.0, &old_declared),
        (formats.1, &new_declared),
        &current,
        &path,
        &config,
    ) {
        Ok(c) => c,
        Err(e) => return common::usage_error(e),
    };
    print_findings(&args.new, &new_declared, false);
    for (source, name) in &change.added {
        eprintln!("adds destination `{name}` ({source})");
    }
    for (source, name) in &change.removed {
        eprintln!("removes destination `{name}` ({source})");
    }
    for (source, name) in &change.rejustified {
        eprintln!("changes the components of `{name}` ({source})");
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(change.unified.as_bytes());
    if change.unified.is_empty() {
        eprintln!("no change to {path}");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// For `egc verify --sbom BOM`: the sources the SBOM declares, or `None` without one.
pub fn sources_for_verify(
    bom: Option<&Path>,
) -> Result<Option<Vec<egress_verify::sbom::DeclaredSource>>, ExitCode> {
    match bom {
        Some(path) => {
            let (_, declared) = load(path)?;
            Ok(Some(verifier_sources(&declared)))
        }
        None => Ok(None),
    }
}

/// Adds `sbom-justified` to each report, checked against the declared sources.
pub fn add_to_reports(
    reports: &mut [(&egress_check::CheckResult, egress_verify::Report)],
    sources: &[egress_verify::sbom::DeclaredSource],
) {
    for (result, report) in reports.iter_mut() {
        if let Some(policy) = result.policy.as_ref() {
            egress_verify::sbom::add_sbom_justified(report, policy, sources);
        }
    }
}
