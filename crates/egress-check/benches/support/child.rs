//! Running `egc` as a user does, and measuring that one process: shared by the
//! whole-process benches (`egress-check`'s `check_scale`, `egress-verify`'s
//! `verify_scale`, which includes this file by path).
//!
//! Each run is waited for by a fresh copy of the bench binary in child mode (`--child
//! LIMIT OUT PROGRAM ARGS...`), whose `getrusage(RUSAGE_CHILDREN)` then covers the one
//! `egc` process: wall time, CPU time (user + system), peak RSS, exit code, and whether it
//! was killed after LIMIT seconds. Its stdout goes to OUT.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `egc` run cost.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // Not every bench reads every field.
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
    pub rss_bytes: f64,
    pub exit: i32,
    pub over_limit: bool,
    pub output_bytes: u64,
}

/// Runs child mode if this process was started in it (`--child ...`); true then.
pub fn child_mode(args: &[String]) -> bool {
    if args.first().map(String::as_str) != Some("--child") {
        return false;
    }
    let args = &args[1..];
    let limit = Duration::from_secs_f64(args[0].parse().unwrap());
    let out = std::fs::File::create(&args[1]).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&args[2])
        .args(&args[3..])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut over = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            over = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = started.elapsed().as_secs_f64();
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let cpu = secs(usage.user_time()) + secs(usage.system_time());
    println!(
        "{wall} {cpu} {} {} {}",
        usage.max_rss(),
        status.code().unwrap_or(-1),
        u8::from(over)
    );
    true
}

/// Runs `egc ARGS...` (with `env` set, or removed where `None`) through a child-mode copy
/// of this binary, its stdout to `out`, killed after `limit` seconds.
pub fn measure(
    egc: &Path,
    args: &[&std::ffi::OsStr],
    env: &[(&str, Option<&std::ffi::OsStr>)],
    limit: f64,
    out: &Path,
) -> Cost {
    let me = std::env::current_exe().unwrap();
    let mut command = Command::new(me);
    for (key, value) in env {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    let output = command
        .arg("--child")
        .arg(limit.to_string())
        .arg(out)
        .arg(egc)
        .args(args)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&output.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 5, "child output: {line}");
    Cost {
        wall: f[0].parse().unwrap(),
        cpu: f[1].parse().unwrap(),
        rss_bytes: f[2].parse::<f64>().unwrap() * 1024.0,
        exit: f[3].parse().unwrap(),
        over_limit: f[4] == "1",
        output_bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
    }
}

/// Seconds as `123 ms` below one second, `1.23 s` above.
#[allow(dead_code)] // Not every bench prints milliseconds.
pub fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}
