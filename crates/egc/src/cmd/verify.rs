//! `egc verify PATH...`: prove every property of each policy, or show a counterexample
//! path with a concrete witness.
//!
//! Exit codes: 0 every property verified; 1 any property violated or unknown, or the
//! policy has check errors (nothing is verified then); 2 usage or I/O errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use egress_check::CheckResult;
use egress_verify::{Engine, Report, Verdict, VerifyConfig};

use crate::common::{self, Format};
use crate::render;

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
    /// None: the policies, boundaries and baseline the nearest `egc.toml` names.
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
    /// Accepted risks: findings this TOML file lists (property, agent, witness, with an
    /// owner, a reason and an expiry) do not fail the run.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Neither read nor write the memo of earlier runs (by default `egc verify` re-verifies
    /// only the agents whose inputs changed since a run that proved them; see `egc help
    /// verify` and the book's "Incremental verification").
    #[arg(long)]
    pub no_cache: bool,
    /// Today's date for baseline expiry (`YYYY-MM-DD`), for tests.
    #[arg(long, hide = true, value_parser = crate::baseline::Date::parse)]
    pub now: Option<crate::baseline::Date>,
}

/// The policies to verify, grouped by the boundary they are verified within, and the
/// baseline: from the command line, else from `egc.toml`.
type Groups = (Vec<(Vec<PathBuf>, Option<PathBuf>)>, Option<PathBuf>);

fn groups_of(args: &Args) -> Result<Groups, ExitCode> {
    if !args.paths.is_empty() {
        return Ok((
            vec![(args.paths.clone(), args.within.clone())],
            args.baseline.clone(),
        ));
    }
    match crate::config::load() {
        Ok(Some(config)) => {
            let mut groups = config.groups();
            if let Some(within) = &args.within {
                groups = vec![(config.policy_paths(), Some(within.clone()))];
            }
            Ok((groups, args.baseline.clone().or(config.baseline)))
        }
        Ok(None) => Err(common::usage_error(
            "no input: give policy files or directories, or name them in an `egc.toml`",
        )),
        Err(e) => Err(common::usage_error(e)),
    }
}

pub fn run(args: Args) -> ExitCode {
    let sbom_sources = match crate::cmd::sbom::sources_for_verify(args.sbom.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (groups, baseline_path) = match groups_of(&args) {
        Ok(g) => g,
        Err(code) => return code,
    };
    let baseline = match &baseline_path {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| crate::baseline::parse(&text))
        {
            Ok(entries) => Some(entries),
            Err(e) => return common::usage_error(format!("baseline `{}`: {e}", path.display())),
        },
        None => None,
    };
    // Each policy with the index of its boundary in `boundaries`.
    let mut policies: Vec<common::LoadedPolicy> = Vec::new();
    let mut bounded_by: Vec<Option<usize>> = Vec::new();
    // What names each policy's memo: where it was read from, and within what.
    let mut identities: Vec<String> = Vec::new();
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut boundaries: Vec<common::LoadedPolicy> = Vec::new();
    for (paths, within) in &groups {
        let boundary = match within {
            Some(path) => match common::load_boundary(path, args.format) {
                Ok(b) => Some((path.clone(), b)),
                Err(code) => return code,
            },
            None => None,
        };
        let mut group = match common::load_policies(paths, args.root.as_deref()) {
            Ok(p) => p,
            Err(code) => return code,
        };
        // A boundary kept below the policies it bounds is not itself a policy to verify.
        if let Some((path, _)) = &boundary {
            match boundary_dir_of(paths, args.root.as_deref(), path) {
                Ok(Some((root, dir))) => group.retain(|p| root.join(&p.dir) != dir),
                Ok(None) => {}
                Err(code) => return code,
            }
        }
        let index = boundary.map(|(_, b)| {
            boundaries.push(b);
            boundaries.len() - 1
        });
        bounded_by.extend(group.iter().map(|_| index));
        identities.extend(group.iter().map(|p| {
            format!(
                "{}\0{:?}\0{:?}\0{:?}\0{}",
                cwd.display(),
                args.root,
                paths,
                within,
                p.dir
            )
        }));
        policies.extend(group);
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
    let store = crate::memo::MemoStore::from_env(args.no_cache);
    let started = std::time::Instant::now();
    let progress =
        crate::progress::Progress::new(policies.len(), "verifying", args.format == Format::Human);
    let mut reports: Vec<(&CheckResult, Report)> = policies
        .iter()
        .zip(&bounded_by)
        .zip(&identities)
        .filter_map(|((p, bound), identity)| {
            let report = p.result.policy.as_ref().map(|policy| {
                progress.set_message(&p.dir);
                let boundary = bound
                    .and_then(|i| boundaries.get(i))
                    .and_then(|b| b.result.policy.as_ref());
                let report = match (&store, boundary) {
                    (Some(store), boundary) => {
                        let loaded = store.load(identity);
                        let (report, next) = egress_verify::verify_incremental(
                            policy,
                            boundary,
                            &config,
                            &loaded.memo,
                        );
                        store.store(identity, &loaded, &next);
                        report
                    }
                    (None, Some(b)) => egress_verify::verify_within(policy, b, &config),
                    (None, None) => egress_verify::verify(policy, &config),
                };
                (&p.result, report)
            });
            progress.inc();
            report
        })
        .collect();
    progress.finish();
    if let Some(sources) = &sbom_sources {
        crate::cmd::sbom::add_to_reports(&mut reports, sources);
    }
    let elapsed = started.elapsed();
    let applied = baseline.as_ref().map(|entries| {
        let mut bare: Vec<Report> = reports.iter().map(|(_, r)| r.clone()).collect();
        let applied = crate::baseline::apply(
            entries,
            &mut bare,
            args.now.unwrap_or_else(crate::baseline::Date::today),
        );
        for ((_, r), b) in reports.iter_mut().zip(bare) {
            *r = b;
        }
        applied
    });
    let pairs: Vec<(&CheckResult, &Report)> = reports.iter().map(|(c, r)| (*c, r)).collect();
    let verdict = render::json::overall(&pairs);
    let baseline_fails = applied.as_ref().is_some_and(|a| a.fails());
    let verdict_text = crate::baseline::verdict_text(verdict, applied.as_ref());
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            // Streamed: the report is never built as one JSON value.
            let mut json = render::json::JsonReport::new(&pairs);
            if let Some(applied) = &applied {
                json.insert("verdict", verdict_text.into());
                json.insert("baseline", crate::baseline::json(applied));
            }
            let mut writer = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            let _ = serde_json::to_writer_pretty(&mut writer, &json);
            let _ = writeln!(writer);
            let _ = writer.flush();
        }
        Format::Sarif => {
            let mut sarif = render::sarif::report(&pairs);
            if let Some(applied) = &applied {
                let results: Vec<&CheckResult> = reports.iter().map(|(c, _)| *c).collect();
                crate::baseline::add_to_sarif(&mut sarif, applied, &results);
            }
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&sarif).unwrap_or_default()
            );
        }
        Format::Human => {
            let color = use_color_stdout();
            // Written as it is rendered, through a buffer of bounded size.
            let mut buffer = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            for (index, (result, report)) in reports.iter().enumerate() {
                let dir = result_dir(&policies, result);
                let accepted_ids: Vec<&egress_verify::Property> = applied
                    .iter()
                    .flat_map(|a| &a.accepted_properties)
                    .filter(|(i, _)| *i == index)
                    .map(|(_, id)| id)
                    .collect();
                render::human::report_with(dir, result, report, &accepted_ids, color, &mut buffer);
            }
            if let Some(applied) = &applied {
                for line in crate::baseline::human_lines(applied) {
                    let _ = writeln!(buffer, "{line}");
                }
            }
            let agents: usize = reports.iter().map(|(_, r)| r.stats.agents).sum();
            let remembered: usize = reports.iter().map(|(_, r)| r.stats.remembered).sum();
            let memo = if remembered > 0 {
                format!(" ({remembered} proved by an earlier run on the same inputs)")
            } else {
                String::new()
            };
            let _ = writeln!(
                buffer,
                "{}: {} policies, {agents} agents, in {:.0?}{memo}",
                verdict_text,
                reports.len(),
                elapsed
            );
            let _ = buffer.flush();
        }
    }
    let code = if verdict == Verdict::Verified && !baseline_fails {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    common::leave_to_exit(reports);
    common::leave_to_exit(policies);
    code
}

/// The project root of the verified paths and the boundary's directory, both absolute.
fn boundary_dir_of(
    paths: &[PathBuf],
    root: Option<&std::path::Path>,
    boundary: &std::path::Path,
) -> Result<Option<(PathBuf, PathBuf)>, ExitCode> {
    let inputs: Vec<PathBuf> = paths
        .iter()
        .map(|p| common::absolute_path(p))
        .collect::<Result<_, _>>()?;
    let root = common::project_root(&inputs, root)?;
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

/// The directory of the policy whose check result is `result`.
fn result_dir<'a>(policies: &'a [common::LoadedPolicy], result: &CheckResult) -> &'a str {
    policies
        .iter()
        .find(|p| std::ptr::eq(&p.result, result))
        .map_or(".", |p| p.dir.as_str())
}
