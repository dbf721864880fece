//! `egc build PATH... --target k8s|cilium|seccomp|nftables|ebpf|all --out DIR`: lower checked
//! and verified policies to enforcement artifacts, each proven faithful by translation
//! validation (skip with `--no-validate`).
//!
//! Nothing is written unless every policy checks, verifies, and every target lowers and
//! validates: artifacts go to a temporary directory beside `DIR`, which then replaces
//! `DIR` by rename. With one policy the layout is `DIR/<target>/<file>`; with several,
//! `DIR/<policy directory>/<target>/<file>`. Output is byte-identical for the same input.
//!
//! Exit codes: 0 built; 1 check errors, a violated or unknown property, a refused target
//! or a failed validation; 2 usage or I/O errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use egress_lower::{Target, TargetConfig};
use egress_verify::{Verdict, VerifyConfig};

use crate::common::{self, Format, LoadedPolicy};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files or directories (each directory of `.egress` files is one policy).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Targets to build (comma-separated or repeated): k8s (NetworkPolicy), cilium
    /// (CiliumNetworkPolicy), seccomp (OCI profiles), nftables (a ruleset for `nft -f`),
    /// ebpf (map contents for `egc enforce apply`, layout `egc-ebpf-maps/1`), or all.
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = parse_target)]
    pub target: Vec<Targets>,
    /// Output directory. It is replaced whole; it must be empty, absent, or a previous
    /// `egc build` output.
    #[arg(long)]
    pub out: PathBuf,
    /// Skip translation validation (not recommended).
    #[arg(long)]
    pub no_validate: bool,
    /// The Cilium version of the cluster (`MAJOR.MINOR`); `**.` patterns need 1.19.
    #[arg(long, default_value = "1.18", value_parser = parse_version)]
    pub cilium_version: (u32, u32),
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The project root; imports may not leave it.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Also write `intent.json`, the manifest of the policy's sources, every agent's
    /// connection set and every artifact, and `intent.json.sig`, signed with this secret
    /// key file (`egc exception keygen`). One policy per signed build.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// The SBOM the policy was reviewed against; its digest goes into the manifest.
    #[arg(long, value_name = "BOM", requires = "sign")]
    pub sbom: Option<PathBuf>,
}

fn parse_version(text: &str) -> Result<(u32, u32), String> {
    let (major, minor) = text
        .split_once('.')
        .ok_or_else(|| format!("`{text}` is not MAJOR.MINOR"))?;
    let major = major
        .parse()
        .map_err(|_| format!("bad major version in `{text}`"))?;
    let minor = minor
        .parse()
        .map_err(|_| format!("bad minor version in `{text}`"))?;
    Ok((major, minor))
}

/// The file that marks a directory as `egc build` output, so it may be replaced.
const MARKER: &str = ".egc-build";

/// One `--target` value: a target of `egress_lower::Target`, or all of them.
#[derive(Clone, Debug)]
pub struct Targets(Vec<Target>);

fn parse_target(text: &str) -> Result<Targets, String> {
    if text == "all" {
        return Ok(Targets(Target::ALL.to_vec()));
    }
    Target::from_name(text)
        .map(|t| Targets(vec![t]))
        .ok_or_else(|| {
            let names: Vec<&str> = Target::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown target `{text}` (one of {}, all)", names.join(", "))
        })
}

fn targets_of(args: &[Targets]) -> Vec<Target> {
    let mut out: Vec<Target> = args.iter().flat_map(|t| t.0.iter().copied()).collect();
    out.sort();
    out.dedup();
    out
}

pub fn run(args: Args) -> ExitCode {
    let policies = match common::load_policies(&args.paths, args.root.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if policies.iter().any(|p| p.result.policy.is_none()) {
        common::print_diagnostics(&policies, args.format);
        eprintln!("error: nothing built: the policy has check errors");
        return ExitCode::from(1);
    }
    // Verification gates every build: an artifact of an unproven policy is not written.
    let verify_config = VerifyConfig::default();
    let mut unverified = Vec::new();
    // One step per policy verified and per policy lowered; drawn only on a terminal.
    let progress = crate::progress::Progress::new(
        policies.len() * 2,
        "building",
        args.format == Format::Human,
    );
    for p in &policies {
        progress.set_message(&p.dir);
        progress.inc();
        if let Some(policy) = &p.result.policy {
            let report = egress_verify::verify(policy, &verify_config);
            if report.verdict != Verdict::Verified {
                let failing: Vec<String> = report
                    .properties
                    .iter()
                    .filter(|r| r.status != Verdict::Verified)
                    .map(|r| format!("{} ({})", r.id, r.status.as_str()))
                    .collect();
                unverified.push(format!("{}: {}", p.dir, failing.join(", ")));
            }
        }
    }
    if !unverified.is_empty() {
        progress.finish();
        for line in &unverified {
            eprintln!("error: not verified: {line}");
        }
        eprintln!("error: nothing built; run `egc verify` for the counterexamples");
        return ExitCode::from(1);
    }
    let config = TargetConfig {
        cilium: egress_lower::CiliumConfig {
            version: args.cilium_version,
        },
        ..TargetConfig::default()
    };
    let targets = targets_of(&args.target);
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut reported: Vec<LoadedPolicy> = Vec::new();
    let mut failed = false;
    let mut validated = 0usize;
    let several = policies.len() > 1;
    for p in &policies {
        progress.set_message(&p.dir);
        progress.inc();
        let Some(policy) = &p.result.policy else {
            continue;
        };
        let mut result = p.result.clone();
        let base = if several {
            PathBuf::from(&p.dir)
        } else {
            PathBuf::new()
        };
        match egress_lower::build(policy, &targets, &config, !args.no_validate) {
            Ok(build) => {
                validated += build
                    .reports
                    .values()
                    .map(|r| r.agents_checked)
                    .sum::<usize>();
                for (name, text) in build.files {
                    files.insert(base.join(name), text);
                }
                result.diagnostics = build.warnings;
            }
            Err(diags) => {
                failed = true;
                result.diagnostics = diags;
            }
        }
        reported.push(LoadedPolicy {
            dir: p.dir.clone(),
            result,
        });
    }
    progress.finish();
    common::print_diagnostics(&reported, args.format);
    if failed {
        eprintln!("error: nothing built: a target refused the policy or validation failed");
        return ExitCode::from(1);
    }
    if let Some(key_path) = &args.sign {
        if let Err(e) = add_signed_manifest(&policies, key_path, args.sbom.as_deref(), &mut files) {
            eprintln!("error: nothing built: {e}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = write_out(&args.out, &files) {
        return common::usage_error(e);
    }
    if args.format == Format::Human {
        let names: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
        let validation = if args.no_validate {
            "not validated".to_string()
        } else {
            format!("{validated} artifact(s) validated")
        };
        eprintln!(
            "built {} file(s) for {} into {} ({validation})",
            files.len(),
            names.join(", "),
            args.out.display()
        );
    }
    ExitCode::SUCCESS
}

/// Adds `intent.json` and its signature to the files to write.
fn add_signed_manifest(
    policies: &[LoadedPolicy],
    key_path: &Path,
    sbom: Option<&Path>,
    files: &mut BTreeMap<PathBuf, String>,
) -> Result<(), String> {
    let [loaded] = policies else {
        return Err("--sign builds one policy at a time".into());
    };
    let Some(policy) = &loaded.result.policy else {
        return Err("the policy has errors".into());
    };
    let key_text =
        std::fs::read_to_string(key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let key = egress_enforce::exception::parse_secret_key(&key_text).map_err(|e| e.to_string())?;
    let sbom_bytes = match sbom {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let intent = crate::cmd::manifest::intent_for(loaded, policy, files, sbom_bytes.as_deref())?;
    let text = intent.to_canonical_json();
    let signature = egress_enforce::manifest::sign(&text, &key);
    files.insert(PathBuf::from(egress_enforce::manifest::INTENT_FILE), text);
    files.insert(
        PathBuf::from(egress_enforce::manifest::SIGNATURE_FILE),
        signature,
    );
    Ok(())
}

/// Writes every file into a fresh temporary directory beside `out`, then swaps it in.
fn write_out(out: &Path, files: &BTreeMap<PathBuf, String>) -> Result<(), String> {
    if out.exists() {
        let entries: Vec<_> = std::fs::read_dir(out)
            .map_err(|e| format!("cannot read `{}`: {e}", out.display()))?
            .flatten()
            .collect();
        if !entries.is_empty() && !out.join(MARKER).is_file() {
            return Err(format!(
                "`{}` is not empty and is not an `egc build` output; refusing to replace it",
                out.display()
            ));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("`{}` has no directory name", out.display()))?;
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    let pid = std::process::id();
    let temporary = parent.join(format!(".{name}.egc-tmp-{pid}"));
    let old = parent.join(format!(".{name}.egc-old-{pid}"));
    let _ = std::fs::remove_dir_all(&temporary);
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&temporary)?;
        std::fs::write(
            temporary.join(MARKER),
            "Generated by `egc build`; replaced whole on every build.\n",
        )?;
        for (path, text) in files {
            let full = temporary.join(path);
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&full, text)?;
        }
        if out.exists() {
            std::fs::rename(out, &old)?;
        }
        std::fs::rename(&temporary, out)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&temporary);
        if old.exists() && !out.exists() {
            let _ = std::fs::rename(&old, out);
        }
        return Err(format!("cannot write `{}`: {e}", out.display()));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
