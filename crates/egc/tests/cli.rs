//! The `egc` binary end to end: exit codes, formats, and hostile input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn egc(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run egc")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("egc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_help() {
    let o = egc(&["--version"], &repo());
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("egc "));
    let o = egc(&["check", "--help"], &repo());
    assert!(o.status.success());
    let o = egc(&["no-such-command"], &repo());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn examples_and_stdlib_check_clean_and_are_formatted() {
    let o = egc(&["check", "examples/", "stdlib/"], &repo());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = egc(&["fmt", "--check", "examples/", "stdlib/"], &repo());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn json_diagnostics_have_the_documented_fields() {
    let dir = temp_dir("json");
    std::fs::write(
        dir.join("main.egress"),
        "destination api {\n    host \"api.example.com\"\n    port 443\n}\n\ncapability c {\n    connect apj\n}\n",
    )
    .unwrap();
    let o = egc(&["check", "--format", "json", "."], &dir);
    assert_eq!(o.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &value["diagnostics"][0];
    assert_eq!(d["code"], "E0010");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "main.egress");
    assert_eq!(d["start"]["line"], 7);
    assert_eq!(d["start"]["column"], 13);
    assert_eq!(d["end"]["column"], 16);
    assert!(d["message"].as_str().unwrap().contains("apj"));
    assert!(d["help"].as_str().unwrap().contains("api"));
    assert!(!d["labels"].as_array().unwrap().is_empty());
}

#[test]
fn fmt_writes_atomically_and_is_idempotent() {
    let dir = temp_dir("fmt");
    let file = dir.join("main.egress");
    std::fs::write(
        &file,
        "// keep me\ndestination api{host \"api.example.com\" port 443}",
    )
    .unwrap();
    let o = egc(&["fmt", "--check", "."], &dir);
    assert_eq!(o.status.code(), Some(1));
    let o = egc(&["fmt", "."], &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        formatted,
        "// keep me\ndestination api {\n    host \"api.example.com\"\n    port 443\n}\n"
    );
    let o = egc(&["fmt", "--check", "."], &dir);
    assert_eq!(o.status.code(), Some(0));
    // A file with a syntax error is reported and left untouched.
    std::fs::write(&file, "destination api {").unwrap();
    let o = egc(&["fmt", "."], &dir);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "destination api {");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary files left"
    );
}

#[test]
fn explain_and_init() {
    let o = egc(&["explain", "E0010"], &repo());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("E0010"));
    let o = egc(&["explain", "E9999"], &repo());
    assert_eq!(o.status.code(), Some(2));
    let dir = temp_dir("init");
    let o = egc(&["init", "starter"], &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = egc(&["check", "starter"], &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = egc(&["init", "starter"], &dir);
    assert_eq!(o.status.code(), Some(2), "init refuses to overwrite");
}

/// A deterministic pseudo-random byte stream (xorshift), so failures reproduce.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state & 0xff) as u8
        })
        .collect()
}

fn assert_rejected(dir: &Path, what: &str, max_seconds: f64) {
    let started = Instant::now();
    let o = egc(&["check", "."], dir);
    let elapsed = started.elapsed().as_secs_f64();
    let err = stderr(&o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "{what}: exit {:?}\n{err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{what}: panicked\n{err}");
    assert!(
        err.contains("[E0") || err.starts_with("error:"),
        "{what}: no diagnostic\n{err}"
    );
    assert!(elapsed < max_seconds, "{what}: took {elapsed:.2}s");
    eprintln!("{what}: exit {:?} in {elapsed:.3}s", o.status.code());
}

#[test]
fn hostile_input_gets_a_diagnostic_not_a_panic() {
    // Random bytes (invalid UTF-8 most of the time) and random printable text.
    for seed in 1..=20u64 {
        let dir = temp_dir(&format!("rand{seed}"));
        std::fs::write(dir.join("main.egress"), bytes(seed, 4096)).unwrap();
        assert_rejected(&dir, &format!("random bytes seed {seed}"), 5.0);
        let printable: Vec<u8> = bytes(seed, 4096)
            .into_iter()
            .map(|b| b"agent destination{}\"*,=.:/ \n0123456789abcxyz_-"[(b % 46) as usize])
            .collect();
        std::fs::write(dir.join("main.egress"), printable).unwrap();
        assert_rejected(&dir, &format!("random text seed {seed}"), 5.0);
    }
    // Non-UTF-8.
    let dir = temp_dir("latin1");
    std::fs::write(dir.join("main.egress"), b"destination caf\xe9 {}").unwrap();
    assert_rejected(&dir, "non-UTF-8", 5.0);
    // 10,000-deep nesting.
    let dir = temp_dir("nesting");
    let mut deep = String::from("destination x ");
    deep.push_str(&"{".repeat(10_000));
    deep.push_str(&"}".repeat(10_000));
    std::fs::write(dir.join("main.egress"), deep).unwrap();
    assert_rejected(&dir, "10,000-deep nesting", 5.0);
    // A 10 MB file of repeated broken items.
    let dir = temp_dir("large");
    let item = "agent a { uses ; }\ndestination d { port 99999 host \"x\" }\n";
    let big = item.repeat(10 * 1024 * 1024 / item.len());
    std::fs::write(dir.join("main.egress"), big).unwrap();
    assert_rejected(&dir, "10 MB of broken items", 60.0);
    // Over the size limit.
    let dir = temp_dir("huge");
    std::fs::write(dir.join("main.egress"), vec![b' '; 17 * 1024 * 1024]).unwrap();
    assert_rejected(&dir, "17 MB file", 10.0);
}

#[test]
fn imports_may_not_leave_the_project_root() {
    let dir = temp_dir("root");
    std::fs::create_dir_all(dir.join("project")).unwrap();
    std::fs::write(dir.join("secret.egress"), "data pii\n").unwrap();
    std::fs::write(
        dir.join("project/main.egress"),
        "import \"../secret.egress\" as s\n\nagent a {\n    handles s.pii\n}\n",
    )
    .unwrap();
    let o = egc(&["check", "."], &dir.join("project"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("E0015"), "{}", stderr(&o));
    let o = egc(
        &["check", "--root", "/", "main.egress"],
        &dir.join("project"),
    );
    let _ = o; // With an explicit wider root the import is allowed; behaviour covered by tests/ui.
}

fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn build_is_deterministic_and_writes_nothing_on_failure() {
    let dir = temp_dir("build");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for out in [&a, &b] {
        let o = egc(
            &[
                "build",
                "examples/gdpr-erasure",
                "--target",
                "all",
                "--out",
                out.to_str().unwrap(),
            ],
            &repo(),
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let (ta, tb) = (read_tree(&a), read_tree(&b));
    assert!(ta.iter().any(|(p, _)| p.starts_with("ebpf")), "{ta:?}");
    assert!(ta.iter().any(|(p, _)| p.starts_with("k8s")));
    assert_eq!(ta, tb, "two builds differ");
    // A policy with a check error writes nothing.
    let bad = temp_dir("build-bad");
    std::fs::write(
        bad.join("main.egress"),
        "capability c {\n    connect nowhere\n}\n",
    )
    .unwrap();
    let out = dir.join("c");
    let o = egc(
        &[
            "build",
            ".",
            "--target",
            "all",
            "--out",
            out.to_str().unwrap(),
        ],
        &bad,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!out.exists(), "a failed build wrote output");
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(status.status.success(), "git {args:?}: {}", stderr(&status));
}

/// `egc diff BASE..HEAD` over a temporary repository: an equivalent rewrite (declarations
/// reordered, re-indented) reports no change; a widened CIDR reports the agent wider with
/// a witness inside the widening. The work tree is never touched.
#[test]
fn diff_over_git_revisions() {
    let dir = temp_dir("diff-git");
    std::fs::create_dir_all(dir.join("p")).unwrap();
    let policy = std::fs::read_to_string(repo().join("tests/baseline/policy/main.egress")).unwrap();
    std::fs::write(dir.join("p/main.egress"), &policy).unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "base"]);
    let start = policy.find("destination approved_internal").unwrap();
    let end = start + policy[start..].find('}').unwrap() + 1;
    let rewritten = format!(
        "{}{}\n{}\n",
        &policy[..start],
        &policy[end..],
        policy[start..end].replace("    ", "  ")
    );
    std::fs::write(dir.join("p/main.egress"), &rewritten).unwrap();
    git(&dir, &["commit", "-qam", "rewrite"]);
    let widened = rewritten.replace("except 10.20.0.0/17", "except 10.20.0.0/18");
    assert_ne!(widened, rewritten);
    std::fs::write(dir.join("p/main.egress"), &widened).unwrap();
    git(&dir, &["commit", "-qam", "widen"]);
    // A change in the work tree that the revisions must not see.
    std::fs::write(dir.join("p/main.egress"), "not a policy").unwrap();

    let same = egc(&["diff", "HEAD~2..HEAD~1"], &dir);
    assert!(same.status.success(), "{}", stderr(&same));
    assert_eq!(
        String::from_utf8_lossy(&same.stdout),
        "No agent can reach anything new, and none lost reach.\n"
    );

    let wider = egc(&["diff", "HEAD~1..HEAD", "p", "--format", "json"], &dir);
    assert!(wider.status.success(), "{}", stderr(&wider));
    let json: serde_json::Value = serde_json::from_slice(&wider.stdout).unwrap();
    let agent = &json["policies"][0]["agents"][0];
    assert_eq!(agent["agent"], "batch_bot");
    assert_eq!(agent["verdict"], "wider");
    assert_eq!(agent["witness"], "10.20.64.0:443/tcp");

    let markdown = egc(
        &["diff", "HEAD~1..HEAD", "--format", "markdown"],
        &dir.join("p"),
    );
    let text = String::from_utf8_lossy(&markdown.stdout);
    assert!(
        text.contains("| `p` | `batch_bot` | **wider** | `10.20.64.0:443/tcp` |"),
        "{text}"
    );
    assert!(text.contains("<details>"), "{text}");
    assert!(text.lines().count() < 30, "{text}");

    let gain = egc(&["diff", "HEAD~1..HEAD", "--fail-on-gain"], &dir);
    assert_eq!(gain.status.code(), Some(1));
    let bad = egc(&["diff", "nope..HEAD"], &dir);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(dir.join("p/main.egress")).unwrap(),
        "not a policy"
    );
}

/// `egc verify`, `egc test` and `egc check` with no path read the repository's `egc.toml`
/// (examples with their boundaries); a piped run prints no progress characters.
/// Dropping a condition is a widening: a capability limited to a workflow that becomes
/// usable always gives the agent, without the workflow running, what it reached only
/// inside it. `egc diff` reports it as gained (and the reverse as lost).
#[test]
fn diff_counts_a_dropped_condition_as_a_gain() {
    let dir = temp_dir("diff-condition");
    let text =
        std::fs::read_to_string(repo().join("tests/verify/workflow-scoped-capability.egress"))
            .unwrap();
    let (old, new) = (dir.join("old"), dir.join("new"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(old.join("main.egress"), &text).unwrap();
    let dropped = text.replace("    workflows month_end\n", "");
    assert_ne!(dropped, text);
    std::fs::write(new.join("main.egress"), &dropped).unwrap();
    let wider = egc(&["diff", "old", "new", "--format", "json"], &dir);
    assert!(wider.status.success(), "{}", stderr(&wider));
    let json: serde_json::Value = serde_json::from_slice(&wider.stdout).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"wider\""), "{text}");
    assert!(text.contains("before was only under a condition"), "{text}");
    let narrower = egc(&["diff", "new", "old", "--format", "json"], &dir);
    let text = String::from_utf8_lossy(&narrower.stdout).into_owned();
    assert!(text.contains("\"narrower\""), "{text}");
    let gate = egc(&["diff", "old", "new", "--fail-on-gain"], &dir);
    assert_eq!(gate.status.code(), Some(1), "{}", stderr(&gate));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn egc_toml_at_the_repository_root() {
    let root = repo();
    let verify = egc(&["verify"], &root);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}{}", stderr(&verify));
    for example in ["strict-allowlist", "gdpr-erasure", "breach-notification"] {
        assert!(
            out.contains(&format!("policy examples/{example}: verified")),
            "{out}"
        );
    }
    assert!(out.contains("within-boundary"), "{out}");
    let progress = ['█', '▏', '=', '>'];
    assert!(
        !stderr(&verify).contains(progress),
        "a piped run drew a progress bar: {}",
        stderr(&verify)
    );
    let test = egc(&["test"], &root);
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{out}{}", stderr(&test));
    assert!(out.contains(" passed, 0 failed"), "{out}");
    let check = egc(&["check"], &root);
    assert!(check.status.success(), "{}", stderr(&check));

    // Without an egc.toml, no path is a usage error.
    let empty = temp_dir("no-config");
    let none = egc(&["verify"], &empty);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
}

/// A bare `egc build` takes its policies, targets and output directory from `egc.toml`.
#[test]
fn egc_build_with_no_arguments_reads_egc_toml() {
    let dir = temp_dir("build-config");
    std::fs::create_dir_all(dir.join("p")).unwrap();
    std::fs::copy(
        repo().join("examples/strict-allowlist/main.egress"),
        dir.join("p/main.egress"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("examples/strict-allowlist/approvals.egress"),
        dir.join("p/approvals.egress"),
    )
    .unwrap();
    std::fs::write(
        dir.join("egc.toml"),
        "policies = [\"p\"]\n[build]\ntargets = [\"seccomp\"]\nout = \"out\"\n",
    )
    .unwrap();
    let build = egc(&["build"], &dir);
    assert!(build.status.success(), "{}", stderr(&build));
    assert!(dir.join("out").is_dir());
}

/// The `run:` blocks of `action.yml`, in order (a minimal reader: `run: CMD` or
/// `run: |` and the lines indented below it).
fn action_runs(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if let Some(rest) = line.trim_start().strip_prefix("run:") {
            let rest = rest.trim();
            if rest == "|" {
                let mut block = Vec::new();
                i += 1;
                while i < lines.len() {
                    let l = lines[i];
                    if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                        break;
                    }
                    block.push(l.trim().to_string());
                    i += 1;
                }
                out.push(block);
                continue;
            }
            out.push(vec![rest.to_string()]);
        }
        i += 1;
    }
    out
}

/// Every `egc` command of the action's steps runs against examples/ (through the
/// repository's egc.toml) with the built binary, as GitHub would run it, with the pull
/// request's range set to an unchanged one.
#[test]
fn action_steps_run_locally() {
    let root = repo();
    let action = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let runs = action_runs(&action);
    let commands: Vec<&String> = runs
        .iter()
        .flatten()
        .filter(|l| l.starts_with("egc "))
        .collect();
    for expected in [
        "egc check",
        "egc verify --format sarif",
        "egc test",
        "egc diff",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(expected)),
            "action.yml runs no `{expected}`: {commands:?}"
        );
    }
    let temp = temp_dir("action");
    let bin = Path::new(env!("CARGO_BIN_EXE_egc")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(&root)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_ENV", temp.join("github-env"))
            .env("EGC_DIFF_RANGE", "HEAD..HEAD")
            .output()
            .unwrap();
        assert!(output.status.success(), "`{command}`: {}", stderr(&output));
    }
    assert!(
        !temp.join("github-env").exists(),
        "verify failed on the examples"
    );
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(temp.join("egc.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["properties"]["verdict"], "verified");
    let comment = std::fs::read_to_string(temp.join("egc-diff.md")).unwrap();
    assert!(comment.starts_with("### Egress changes"), "{comment}");
}

/// `egc verify` remembers what it proved, in a private, authenticated memo: a second run
/// reuses it and reports the same; a memo made writable by others, replaced by a link, or
/// restored without its key is ignored; a violation introduced after a run is reported.
#[test]
fn verify_memo_is_reused_only_when_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("verify-memo");
    let cache = dir.join("cache");
    let state = dir.join("state");
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    let text = |approve: &str| {
        format!(
            "import std.dns\n\ndestination api {{\n    host \"api.example.internal\"\n    port 443\n}}\n\ncapability call {{\n    connect api, dns.kube_dns\n}}\n\nagent bot {{\n    workload namespace \"n\" labels {{ app = \"bot\" }}\n    uses call\n}}\n\nagent other {{\n    workload namespace \"n\" labels {{ app = \"other\" }}\n    uses call\n}}\n\nzone z {{\n    owner \"security\"\n    agents bot, other\n    approve {approve}dns.kube_dns\n}}\n"
        )
    };
    std::fs::write(policy.join("main.egress"), text("api, ")).unwrap();
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_egc"))
            .args(["verify", "--format", format, "policy"])
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("CI")
            .env("EGC_CACHE_DIR", &cache)
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap()
    };
    let summary = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    let first = run("human");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        !summary(&first).contains("earlier run"),
        "{}",
        summary(&first)
    );
    let json_first = run("json");
    let second = run("human");
    assert!(
        summary(&second).contains("(2 proved by an earlier run"),
        "{}",
        summary(&second)
    );
    assert_eq!(run("json").stdout, json_first.stdout);

    let memo_dir = cache.join("verify");
    let memo_file = std::fs::read_dir(&memo_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "memo"))
        .unwrap();
    // Writable by others: ignored.
    std::fs::set_permissions(&memo_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!summary(&run("human")).contains("earlier run"));
    // (That run wrote a fresh, private memo.) A link in its place: ignored.
    let saved = dir.join("saved.memo");
    std::fs::rename(&memo_file, &saved).unwrap();
    std::os::unix::fs::symlink(&saved, &memo_file).unwrap();
    assert!(!summary(&run("human")).contains("earlier run"));
    assert!(
        !std::fs::symlink_metadata(&memo_file)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a new memo"
    );
    // The memo without its key (a cache restored elsewhere): ignored.
    assert!(summary(&run("human")).contains("earlier run"));
    std::fs::remove_dir_all(&state).unwrap();
    assert!(!summary(&run("human")).contains("earlier run"));
    // Garbage: ignored.
    std::fs::write(&memo_file, b"egc-memo-file/2\nnot a memo").unwrap();
    std::fs::set_permissions(&memo_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!summary(&run("human")).contains("earlier run"));

    // A violation after a run that proved everything is reported, as without a memo.
    assert!(summary(&run("human")).contains("earlier run"));
    std::fs::write(policy.join("main.egress"), text("")).unwrap();
    let after = run("json");
    let fresh = Command::new(env!("CARGO_BIN_EXE_egc"))
        .args(["verify", "--no-cache", "--format", "json", "policy"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(1));
    assert_eq!(after.stdout, fresh.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}
