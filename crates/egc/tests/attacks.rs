//! The attack suite: every case in `tests/attacks/*.c` is a small program a compromised
//! agent could run to get out. Each is compiled, then run
//!
//! - confined (`egc run`, or a cgroup under `egc enforce apply` for `mode: enforce`), once
//!   per variant: it must report that every attempt was blocked, nothing it sent may reach
//!   a forbidden address, and the denials its header names must be in egc's denial log;
//! - unconfined (`control: escapes`): it must get out, which proves the case can fail.
//!
//! Each trial runs in a network namespace it creates (loopback only, plus two documentation
//! addresses on `lo`), where `support/sink.c` captures every packet and listens on the
//! addresses the probes aim at. The header of a case file (leading `//` lines) says:
//!
//! ```text
//! // attack: what the probe tries
//! // modes: run, enforce           (default: run)
//! // variant: NAME: EGC-RUN-ARGS   (extra `egc run` variants besides the default)
//! // policy: NAME                  (tests/attacks/policy/NAME.egress; default: main)
//! // control: escapes | none       (none needs `why-no-control:`)
//! // denial: HOOK REASON           (an event the denial log must hold; repeatable)
//! // terminal: yes | victim: yes | home: yes | inherit-fd: yes | setuid-helper: yes
//! ```
//!
//! Needs root (network namespaces, eBPF, cgroups), a C compiler, `ip`, `nsenter` and
//! `setpriv`; the suite fails, never skips, when they are missing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

const AGENT_UID: u32 = 65534;
const EGC: &str = env!("CARGO_BIN_EXE_egc");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn attacks_dir() -> PathBuf {
    repo_root().join("tests/attacks")
}

/// Build products and per-trial directories: `target/egc-attacks/`.
fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/attacks-<hash> → target/egc-attacks
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .unwrap()
        .to_path_buf();
    target.join("egc-attacks")
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    Run,
    Enforce,
}

#[derive(Clone, Debug, Default)]
struct Case {
    name: String,
    source: PathBuf,
    attack: String,
    modes: Vec<String>,
    variants: Vec<(String, Vec<String>)>,
    policy: String,
    control: bool,
    /// (mode or "" for every mode, hook, reason)
    denials: Vec<(String, String, String)>,
    /// Run the control as root (the attack needs privileges the agent's user lacks,
    /// which the hook must refuse anyway).
    control_as_root: bool,
    terminal: bool,
    victim: bool,
    home: bool,
    inherit_fd: bool,
    setuid_helper: bool,
    /// A fixed path for the sink's unix listener (a policy names it).
    unix_socket: Option<PathBuf>,
    /// Accepted unix connections that are expected (the ones egc passes in).
    allowed_unix_accepts: usize,
}

fn parse_case(path: &Path) -> Result<Case, String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut case = Case {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        source: path.to_path_buf(),
        policy: "main".into(),
        ..Case::default()
    };
    let mut control = None;
    let mut why_no_control = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("// ") else {
            break;
        };
        let Some((key, value)) = rest.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "attack" => case.attack = value.to_string(),
            "modes" | "mode" => {
                case.modes = value.split(',').map(|m| m.trim().to_string()).collect()
            }
            "variant" => {
                let (name, args) = value
                    .split_once(':')
                    .ok_or_else(|| format!("variant without a name: {value}"))?;
                case.variants.push((
                    name.trim().to_string(),
                    args.split_whitespace().map(String::from).collect(),
                ));
            }
            "policy" => case.policy = value.to_string(),
            "control" => control = Some(value == "escapes"),
            "why-no-control" => why_no_control = true,
            "denial" => {
                let words: Vec<&str> = value.split_whitespace().collect();
                match words.as_slice() {
                    [hook, reason] => {
                        case.denials
                            .push((String::new(), hook.to_string(), reason.to_string()))
                    }
                    [mode, hook, reason] => {
                        case.denials
                            .push((mode.to_string(), hook.to_string(), reason.to_string()))
                    }
                    _ => return Err(format!("denial needs [MODE] HOOK REASON: {value}")),
                }
            }
            "control-as" => case.control_as_root = value == "root",
            "unix-socket" => case.unix_socket = Some(PathBuf::from(value)),
            "allowed-unix-accepts" => {
                case.allowed_unix_accepts = value
                    .parse()
                    .map_err(|_| format!("allowed-unix-accepts: {value}"))?
            }
            "terminal" => case.terminal = value == "yes",
            "victim" => case.victim = value == "yes",
            "home" => case.home = value == "yes",
            "inherit-fd" => case.inherit_fd = value == "yes",
            "setuid-helper" => case.setuid_helper = value == "yes",
            other => return Err(format!("unknown header key `{other}`")),
        }
    }
    if case.attack.is_empty() {
        return Err("missing `// attack:` line".into());
    }
    match control {
        Some(c) => case.control = c,
        None => return Err("missing `// control:` line".into()),
    }
    if !case.control && !why_no_control {
        return Err("`control: none` needs a `why-no-control:` line".into());
    }
    if case.modes.is_empty() {
        case.modes = vec!["run".into()];
    }
    for mode in &case.modes {
        if mode != "run" && mode != "enforce" {
            return Err(format!("unknown mode `{mode}`"));
        }
    }
    Ok(case)
}

// ---------------------------------------------------------------------------------------
// Build

fn cc(source: &Path, output: &Path) -> Result<(), String> {
    let status = Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(output)
        .arg(source)
        .status()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cc failed on {}", source.display()))
    }
}

fn support_binaries() -> Result<&'static (PathBuf, PathBuf), String> {
    static BUILT: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = out_dir();
            fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let sink = out.join("sink");
            let ptyrun = out.join("ptyrun");
            cc(&attacks_dir().join("support/sink.c"), &sink)?;
            cc(&attacks_dir().join("support/ptyrun.c"), &ptyrun)?;
            Ok((sink, ptyrun))
        })
        .as_ref()
        .map_err(Clone::clone)
}

// ---------------------------------------------------------------------------------------
// The world a trial runs in

static TRIALS: AtomicU32 = AtomicU32::new(0);

fn run_quiet(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A network namespace with `lo` up, fd00:e9c::8 and fd00:e9c::9 on it, and a sink.
struct World {
    netns: String,
    dir: PathBuf,
    sink: Child,
    sink_log: PathBuf,
    unix_socket: PathBuf,
    abstract_name: String,
    victim: Option<Child>,
    home: PathBuf,
    work: PathBuf,
}

const ALLOWED_TCP: &str = "127.0.0.8:8080";
const FORBIDDEN_TCP: &str = "127.0.0.9:8080";
const ALLOWED_UDP: &str = "127.0.0.8:5353";
const FORBIDDEN_UDP: &str = "127.0.0.9:5353";
const ALLOWED6_TCP: &str = "[fd00:e9c::8]:8080";
const FORBIDDEN6_TCP: &str = "[fd00:e9c::9]:8080";
const ALLOWED6_UDP: &str = "[fd00:e9c::8]:5353";
const FORBIDDEN6_UDP: &str = "[fd00:e9c::9]:5353";

impl World {
    fn new(case: &Case) -> Result<World, String> {
        let (sink_bin, _) = support_binaries()?;
        let n = TRIALS.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let netns = format!("egc-att-{id}");
        let dir = out_dir().join(format!("trial-{}-{id}", case.name));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        run_quiet(Command::new("ip").args(["netns", "add", &netns]))?;
        let mut world = World {
            netns: netns.clone(),
            dir: dir.clone(),
            sink: Command::new("true").spawn().map_err(|e| e.to_string())?,
            sink_log: dir.join("sink.log"),
            unix_socket: case
                .unix_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("/tmp/egc-att-{id}.sock"))),
            abstract_name: format!("egc-att-{id}"),
            victim: None,
            // Outside every path a confined command may write (the build directory may
            // itself lie under /tmp, which is writable), as a real home directory is.
            home: PathBuf::from(format!("/run/egc-attack-tests/home-{id}")),
            work: dir.join("work"),
        };
        if let Some(parent) = world.unix_socket.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        run_quiet(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
        for addr in ["fd00:e9c::8/128", "fd00:e9c::9/128"] {
            run_quiet(
                Command::new("ip").args(["-n", &netns, "addr", "add", addr, "dev", "lo", "nodad"]),
            )?;
        }
        run_quiet(Command::new("ip").args([
            "netns",
            "exec",
            &netns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ping_group_range=0 2147483647",
            "net.ipv4.tcp_fastopen=3",
        ]))?;
        let log = fs::File::create(&world.sink_log).map_err(|e| e.to_string())?;
        let mut sink = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg(sink_bin)
            .arg(&world.unix_socket)
            .arg(&world.abstract_name)
            .args(
                [
                    ALLOWED_TCP,
                    FORBIDDEN_TCP,
                    ALLOWED6_TCP,
                    FORBIDDEN6_TCP,
                    "127.0.0.1:9090",
                    "127.0.0.8:9090",
                    "[::1]:9090",
                ]
                .iter()
                .map(|a| format!("tcp:{a}")),
            )
            .args(
                [
                    ALLOWED_UDP,
                    FORBIDDEN_UDP,
                    ALLOWED6_UDP,
                    FORBIDDEN6_UDP,
                    "127.0.0.1:9090",
                ]
                .iter()
                .map(|a| format!("udp:{a}")),
            )
            .stdout(log)
            .spawn()
            .map_err(|e| format!("start the sink: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if fs::read_to_string(&world.sink_log)
                .unwrap_or_default()
                .contains("ready")
            {
                break;
            }
            if Instant::now() > deadline || sink.try_wait().ok().flatten().is_some() {
                let _ = sink.kill();
                return Err("the sink did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        world.sink = sink;
        for dir in [&world.home, &world.work] {
            fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        fs::create_dir_all(world.home.join(".config")).map_err(|e| e.to_string())?;
        fs::write(world.home.join(".bashrc"), "# the user's own\n").map_err(|e| e.to_string())?;
        for path in [
            world.home.clone(),
            world.home.join(".config"),
            world.home.join(".bashrc"),
            world.work.clone(),
        ] {
            std::os::unix::fs::chown(&path, Some(AGENT_UID), Some(AGENT_UID))
                .map_err(|e| e.to_string())?;
        }
        if case.victim {
            let victim = Command::new("setpriv")
                .args([
                    &format!("--reuid={AGENT_UID}"),
                    &format!("--regid={AGENT_UID}"),
                    "--clear-groups",
                    "sleep",
                    "60",
                ])
                .spawn()
                .map_err(|e| format!("start the victim: {e}"))?;
            world.victim = Some(victim);
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(world)
    }

    fn env(&self, command: &mut Command, case: &Case, mode: &Mode) {
        command
            .env("ALLOWED_TCP", ALLOWED_TCP)
            .env("FORBIDDEN_TCP", FORBIDDEN_TCP)
            .env("ALLOWED_UDP", ALLOWED_UDP)
            .env("FORBIDDEN_UDP", FORBIDDEN_UDP)
            .env("ALLOWED6_TCP", ALLOWED6_TCP)
            .env("FORBIDDEN6_TCP", FORBIDDEN6_TCP)
            .env("ALLOWED6_UDP", ALLOWED6_UDP)
            .env("FORBIDDEN6_UDP", FORBIDDEN6_UDP)
            .env("UNIX_SOCKET", &self.unix_socket)
            .env("ABSTRACT_SOCKET", &self.abstract_name)
            .env("HOME", &self.home)
            .env(
                "EGC_ATTACK_MODE",
                if *mode == Mode::Enforce {
                    "enforce"
                } else {
                    "run"
                },
            )
            .current_dir(&self.work);
        if let Some(victim) = &self.victim {
            command.env("VICTIM_PID", victim.id().to_string());
        }
        if case.inherit_fd {
            command.env("INHERITED_FD", "7");
        }
        if case.setuid_helper {
            command.env("SETUID_HELPER", self.dir.join("setuid-helper"));
        }
    }

    /// What reached a forbidden place: packets to forbidden addresses or port 9090, data
    /// read on a forbidden listener, and connections to the unix sockets. With
    /// `data_only`, packets do not count (the caller itself opened a connection there).
    fn evidence(&mut self, data_only: bool, allowed_unix_accepts: usize) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.sink.kill();
        let _ = self.sink.wait();
        let log = fs::read_to_string(&self.sink_log).unwrap_or_default();
        let mut unix_accepts = 0;
        log.lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    ["packet", _, dst, _, dport, ..] => {
                        !data_only
                            && (*dst == "127.0.0.9" || *dst == "fd00:e9c::9" || *dport == "9090")
                    }
                    ["data", host, port, ..] => {
                        *host == "127.0.0.9" || *host == "fd00:e9c::9" || *port == "9090"
                    }
                    ["unix-accept"] => {
                        unix_accepts += 1;
                        unix_accepts > allowed_unix_accepts
                    }
                    ["abstract-accept"] => true,
                    _ => false,
                }
            })
            .map(String::from)
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.sink.kill();
        let _ = self.sink.wait();
        if let Some(victim) = &mut self.victim {
            let _ = victim.kill();
            let _ = victim.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = fs::remove_file(&self.unix_socket);
        let _ = fs::remove_dir_all(&self.home);
    }
}

// ---------------------------------------------------------------------------------------
// One trial

struct Outcome {
    code: Option<i32>,
    output: String,
}

fn spawn_and_wait(mut command: Command, timeout: Duration) -> Result<Outcome, String> {
    let out_path = std::env::temp_dir().join(format!(
        "egc-att-out-{}-{}",
        std::process::id(),
        TRIALS.fetch_add(1, Ordering::SeqCst)
    ));
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = command.spawn().map_err(|e| format!("{command:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    match status {
        Some(status) => Ok(Outcome {
            code: status.code(),
            output,
        }),
        None => Err(format!("timed out after {timeout:?}; output:\n{output}")),
    }
}

fn probe_binary(case: &Case) -> Result<PathBuf, String> {
    let out = out_dir().join("probes");
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let binary = out.join(&case.name);
    cc(&case.source, &binary)?;
    Ok(binary)
}

fn setuid_copy(world: &World, probe: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let helper = world.dir.join("setuid-helper");
    fs::copy(probe, &helper).map_err(|e| e.to_string())?;
    std::os::unix::fs::chown(&helper, Some(0), Some(0)).map_err(|e| e.to_string())?;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o4755)).map_err(|e| e.to_string())
}

/// The command line that starts `inner` in the trial's network namespace, with a
/// controlling terminal or an inherited descriptor when the case asks for one.
fn wrap(world: &World, case: &Case, inner: Vec<String>) -> Command {
    let (_, ptyrun) = support_binaries().expect("support binaries");
    let mut args: Vec<String> = Vec::new();
    if case.inherit_fd {
        // A connection to a forbidden address, opened by the caller before the sandbox
        // and left open across exec (bash opens it without close-on-exec).
        let (host, port) = FORBIDDEN_TCP.split_once(':').unwrap();
        args.extend([
            "bash".into(),
            "-c".into(),
            format!("exec 7<>/dev/tcp/{host}/{port} && exec \"$@\""),
            "bash".into(),
        ]);
    }
    if case.terminal {
        args.push(ptyrun.display().to_string());
    }
    args.extend(inner);
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{}", world.netns))
        .args(args);
    command
}

fn as_agent_user(probe: &Path) -> Vec<String> {
    vec![
        "setpriv".into(),
        format!("--reuid={AGENT_UID}"),
        format!("--regid={AGENT_UID}"),
        "--clear-groups".into(),
        probe.display().to_string(),
    ]
}

fn policy_path(case: &Case) -> PathBuf {
    attacks_dir().join(format!("policy/{}.egress", case.policy))
}

/// Denials as (hook, reason) pairs, from `egc run --format json`'s summary or from
/// `egc enforce events --format json` lines.
fn denials_in(output: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut push = |d: &serde_json::Value| {
            if let (Some(hook), Some(reason)) = (d["hook"].as_str(), d["reason"].as_str()) {
                found.push((hook.to_string(), reason.to_string()));
            }
        };
        if let Some(list) = value["denials"].as_array() {
            list.iter().for_each(&mut push);
        }
        if value["denial"].is_object() {
            push(&value["denial"]);
        }
        if value["format"] == "egc-event/1" {
            push(&value);
        }
    }
    found
}

fn confined(case: &Case, mode: &Mode, extra: &[String]) -> Result<(), Failed> {
    let probe = probe_binary(case)?;
    let mut world = World::new(case)?;
    if case.setuid_helper {
        setuid_copy(&world, &probe)?;
    }
    let (outcome, denials) = match mode {
        Mode::Run => {
            let mut inner: Vec<String> = vec![
                EGC.into(),
                "run".into(),
                policy_path(case).display().to_string(),
                "--agent".into(),
                "attacker".into(),
                "--format".into(),
                "json".into(),
            ];
            if !extra
                .iter()
                .any(|a| a == "--dynamic-user" || a == "--allow-root")
            {
                inner.extend(["--uid".into(), AGENT_UID.to_string()]);
            }
            inner.extend(extra.iter().cloned());
            inner.push("--".into());
            inner.push(probe.display().to_string());
            let mut command = wrap(&world, case, inner);
            world.env(&mut command, case, mode);
            let outcome = spawn_and_wait(command, Duration::from_secs(30))?;
            let denials = denials_in(&outcome.output);
            (outcome, denials)
        }
        Mode::Enforce => {
            let name = format!("attack-{}", world.netns.trim_start_matches("egc-att-"));
            let cgroup = format!("/egc-attacks/{name}");
            let apply = Command::new(EGC)
                .args(["enforce", "apply"])
                .arg(policy_path(case))
                .args(["--agent", "attacker", "--cgroup", &cgroup, "--name", &name])
                .output()
                .map_err(|e| e.to_string())?;
            if !apply.status.success() {
                return Err(format!(
                    "egc enforce apply failed: {}",
                    String::from_utf8_lossy(&apply.stderr)
                )
                .into());
            }
            let cgroup_dir = cgroup_root().join(cgroup.trim_start_matches('/'));
            let mut inner = vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo $$ > {}/cgroup.procs && exec \"$@\"",
                    cgroup_dir.display()
                ),
                "sh".into(),
            ];
            inner.extend(as_agent_user(&probe));
            let mut command = wrap(&world, case, inner);
            world.env(&mut command, case, mode);
            let outcome = spawn_and_wait(command, Duration::from_secs(30));
            let events = Command::new(EGC)
                .args(["enforce", "events", &name, "--format", "json"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let _ = Command::new(EGC)
                .args(["enforce", "detach", &name])
                .output();
            let _ = fs::remove_dir(&cgroup_dir);
            (outcome?, denials_in(&events))
        }
    };
    let evidence = world.evidence(case.inherit_fd, case.allowed_unix_accepts);
    let mut problems = Vec::new();
    match outcome.code {
        Some(0) => {}
        Some(10) => problems.push("the probe reports that it got out".to_string()),
        other => problems.push(format!(
            "the probe did not run to a verdict (exit {other:?}): egc refused to start it, or the environment is broken"
        )),
    }
    if !evidence.is_empty() {
        problems.push(format!("forbidden traffic reached the sink: {evidence:?}"));
    }
    if case.terminal && !outcome.output.contains("injected 0") {
        problems.push("bytes were pushed into the caller's terminal".into());
    }
    if case.home {
        let bashrc = fs::read_to_string(world.home.join(".bashrc")).unwrap_or_default();
        if bashrc != "# the user's own\n" || world.home.join(".profile").exists() {
            problems.push("the user's startup files were changed".into());
        }
    }
    let mode_name = match mode {
        Mode::Run => "run",
        Mode::Enforce => "enforce",
    };
    for (only, hook, reason) in &case.denials {
        if !only.is_empty() && only != mode_name {
            continue;
        }
        if !denials.iter().any(|(h, r)| h == hook && r == reason) {
            problems.push(format!(
                "no `{hook}` denial with reason `{reason}` in egc's denial log (found {denials:?})"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}:\n- {}\noutput:\n{}",
            case.attack,
            problems.join("\n- "),
            outcome.output
        )
        .into())
    }
}

fn control(case: &Case, mode: &Mode) -> Result<(), Failed> {
    let probe = probe_binary(case)?;
    let mut world = World::new(case)?;
    if case.setuid_helper {
        setuid_copy(&world, &probe)?;
    }
    let inner = if case.control_as_root {
        vec![probe.display().to_string()]
    } else {
        as_agent_user(&probe)
    };
    let mut command = wrap(&world, case, inner);
    world.env(&mut command, case, mode);
    let outcome = spawn_and_wait(command, Duration::from_secs(30))?;
    let evidence = world.evidence(case.inherit_fd, case.allowed_unix_accepts);
    if outcome.code == Some(10) {
        Ok(())
    } else {
        Err(format!(
            "unconfined, the attack should get out (exit 10), so that the confined trial can fail; exit {:?}, evidence {evidence:?}, output:\n{}",
            outcome.code, outcome.output
        )
        .into())
    }
}

/// `egc run` must refuse (exit code `code`, a message containing `says`) and start
/// nothing. `says` holds the diagnostic code (`error[E0152]`) and the gist of the message.
fn refusal(policy: &str, extra: &[&str], code: i32, says: &[&str]) -> Result<(), Failed> {
    let dir = out_dir().join(format!(
        "refusal-{}-{}",
        std::process::id(),
        TRIALS.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let marker = dir.join("ran");
    let output = Command::new(EGC)
        .arg("run")
        .arg(attacks_dir().join(format!("policy/{policy}.egress")))
        .args(["--agent", "attacker"])
        .args(extra)
        .arg("--")
        .args(["/bin/sh", "-c", &format!("echo > {}", marker.display())])
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let ran = marker.exists();
    let _ = fs::remove_dir_all(&dir);
    if output.status.code() != Some(code) || !says.iter().all(|s| stderr.contains(s)) || ran {
        return Err(format!(
            "expected exit {code} with {says:?} and nothing run; got exit {:?}, ran: {ran}, stderr:\n{stderr}",
            output.status.code()
        )
        .into());
    }
    Ok(())
}

/// Every attack case is named by the threat model page, and every case it names exists.
fn threat_model_names_every_case(cases: &[String]) -> Result<(), Failed> {
    let page = fs::read_to_string(repo_root().join("book/src/runtime/threat-model.md"))
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for case in cases {
        if !page.contains(&format!("tests/attacks/{case}.c")) {
            problems.push(format!("case `{case}` is not in the threat model"));
        }
    }
    for (index, _) in page.match_indices("tests/attacks/") {
        let rest = &page[index + "tests/attacks/".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
            .collect();
        if let Some(stem) = name.strip_suffix(".c") {
            if !cases.iter().any(|c| c == stem) {
                problems.push(format!(
                    "the threat model names `{name}`, which does not exist"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// A signed build of the attack policy, in a fresh directory: (dir, public key).
fn signed_build(tag: &str) -> Result<(PathBuf, String), String> {
    let dir = out_dir().join(format!(
        "manifest-{tag}-{}-{}",
        std::process::id(),
        TRIALS.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("pol")).map_err(|e| e.to_string())?;
    fs::copy(policy_path_named("main"), dir.join("pol/main.egress")).map_err(|e| e.to_string())?;
    let keygen = Command::new(EGC)
        .args(["exception", "keygen", "--out"])
        .arg(dir.join("key"))
        .output()
        .map_err(|e| e.to_string())?;
    let printed = String::from_utf8_lossy(&keygen.stdout).into_owned()
        + &String::from_utf8_lossy(&keygen.stderr);
    let public = printed
        .split('"')
        .find(|part| part.starts_with("ed25519:"))
        .ok_or_else(|| format!("no public key in {printed:?}"))?
        .to_string();
    let build = Command::new(EGC)
        .current_dir(&dir)
        .args([
            "build",
            "pol",
            "--target",
            "ebpf,seccomp",
            "--out",
            "out",
            "--sign",
            "key",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !build.status.success() {
        return Err(format!(
            "signed build failed: {}",
            String::from_utf8_lossy(&build.stderr)
        ));
    }
    Ok((dir, public))
}

fn policy_path_named(name: &str) -> PathBuf {
    attacks_dir().join(format!("policy/{name}.egress"))
}

fn egc_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(EGC)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run egc")
}

/// Issue 13: a policy, artifact or manifest changed after signing is refused by
/// `egc manifest verify`, `egc run` and `egc enforce apply`; the untouched build is
/// accepted; two builds give the same manifest bytes.
fn manifest_trial(kind: &'static str) -> Result<(), Failed> {
    let (dir, public) = signed_build(kind)?;
    let run = |policy: &str| {
        egc_in(
            &dir,
            &[
                "run",
                policy,
                "--agent",
                "attacker",
                "--uid",
                "65534",
                "--manifest",
                "out",
                "--key",
                &public,
                "--",
                "/bin/true",
            ],
        )
    };
    let verify = |extra: &[&str]| {
        let mut args = vec!["manifest", "verify", "out", "--key", &public];
        args.extend_from_slice(extra);
        egc_in(&dir, &args)
    };
    let result: Result<(), String> = match kind {
        "accepted" => {
            let v = verify(&["--policy", "pol"]);
            let r = run("pol");
            if v.status.code() == Some(0) && r.status.code() == Some(0) {
                Ok(())
            } else {
                Err(format!(
                    "verify {:?} {}; run {:?} {}",
                    v.status.code(),
                    String::from_utf8_lossy(&v.stderr),
                    r.status.code(),
                    String::from_utf8_lossy(&r.stderr)
                ))
            }
        }
        "deterministic" => {
            let first = fs::read(dir.join("out/intent.json")).map_err(|e| e.to_string())?;
            let first_sig = fs::read(dir.join("out/intent.json.sig")).map_err(|e| e.to_string())?;
            let again = egc_in(
                &dir,
                &[
                    "build",
                    "pol",
                    "--target",
                    "ebpf,seccomp",
                    "--out",
                    "out2",
                    "--sign",
                    "key",
                ],
            );
            let second = fs::read(dir.join("out2/intent.json")).map_err(|e| e.to_string())?;
            let second_sig =
                fs::read(dir.join("out2/intent.json.sig")).map_err(|e| e.to_string())?;
            if again.status.success() && first == second && first_sig == second_sig {
                Ok(())
            } else {
                Err("two builds gave different manifests".into())
            }
        }
        "tampered-policy" => {
            let path = dir.join("pol/main.egress");
            let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
            fs::write(&path, text.replacen("port 8080", "port 8081", 1))
                .map_err(|e| e.to_string())?;
            let r = run("pol");
            let apply = egc_in(
                &dir,
                &[
                    "enforce",
                    "apply",
                    "pol",
                    "--agent",
                    "attacker",
                    "--cgroup",
                    "/egc-attacks/manifest-refused",
                    "--name",
                    "manifest-refused",
                    "--manifest",
                    "out",
                    "--key",
                    &public,
                ],
            );
            let _ = egc_in(&dir, &["enforce", "detach", "manifest-refused"]);
            let log = fs::read_to_string("/var/log/egc/exceptions.jsonl").unwrap_or_default();
            let audited = log
                .lines()
                .rev()
                .take(4)
                .any(|l| l.contains("\"stage\":\"manifest\"") && l.contains("main.egress"));
            if r.status.code() == Some(2) && apply.status.code() == Some(2) && audited {
                Ok(())
            } else {
                Err(format!(
                    "run {:?}, enforce apply {:?}, audited {audited}: {}",
                    r.status.code(),
                    apply.status.code(),
                    String::from_utf8_lossy(&r.stderr)
                ))
            }
        }
        "tampered-artifact" => {
            let path = dir.join("out/ebpf/attacker.maps.json");
            let mut bytes = fs::read(&path).map_err(|e| e.to_string())?;
            if let Some(last) = bytes.last_mut() {
                *last ^= 1;
            }
            fs::write(&path, bytes).map_err(|e| e.to_string())?;
            let v = verify(&[]);
            let r = run("pol");
            if v.status.code() == Some(1) && r.status.code() == Some(2) {
                Ok(())
            } else {
                Err(format!(
                    "manifest verify exit {:?}, run exit {:?}",
                    v.status.code(),
                    r.status.code()
                ))
            }
        }
        "tampered-manifest" => {
            let path = dir.join("out/intent.json");
            let text = fs::read_to_string(&path).map_err(|e| e.to_string())?;
            fs::write(&path, text.replacen("sha256:", "sha256:0", 1)).map_err(|e| e.to_string())?;
            let v = verify(&[]);
            let r = run("pol");
            if v.status.code() == Some(1) && r.status.code() == Some(2) {
                Ok(())
            } else {
                Err(format!(
                    "manifest verify {:?}, run {:?}",
                    v.status.code(),
                    r.status.code()
                ))
            }
        }
        other => Err(format!("unknown manifest trial {other}")),
    };
    let _ = fs::remove_dir_all(&dir);
    result.map_err(Failed::from)
}

/// Issue 13, code identity: an agent that pins its program and script by digest is
/// started only with exactly those files.
fn identity_trial(kind: &'static str) -> Result<(), Failed> {
    let dir = out_dir().join(format!(
        "identity-{kind}-{}-{}",
        std::process::id(),
        TRIALS.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("pol")).map_err(|e| e.to_string())?;
    let script = dir.join("agent.sh");
    fs::write(&script, "echo reviewed\n").map_err(|e| e.to_string())?;
    let digest_of = |path: &Path| -> Result<String, String> {
        let out = Command::new("sha256sum")
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(format!(
            "sha256:{}",
            text.split_whitespace().next().unwrap_or("")
        ))
    };
    let sh = fs::canonicalize("/bin/sh").map_err(|e| e.to_string())?;
    let policy = format!(
        "import std.sys\ncapability work {{\n    syscalls sys.process_base\n}}\nagent coder {{\n    uses work\n    executable \"{}\"\n    executable \"{}\"\n}}\n",
        digest_of(&sh)?,
        digest_of(&script)?
    );
    fs::write(dir.join("pol/main.egress"), policy).map_err(|e| e.to_string())?;
    let run = |args: &[&str]| {
        let mut all = vec!["run", "pol", "--agent", "coder", "--uid", "65534", "--"];
        all.extend_from_slice(args);
        egc_in(&dir, &all)
    };
    let script_arg = script.display().to_string();
    let result = match kind {
        "pinned-script-runs" => {
            let out = run(&["/bin/sh", &script_arg]);
            if out.status.code() == Some(0)
                && String::from_utf8_lossy(&out.stdout).contains("reviewed")
            {
                Ok(())
            } else {
                Err(format!(
                    "exit {:?}: {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        }
        "changed-script-refused" => {
            fs::write(&script, "echo changed\n").map_err(|e| e.to_string())?;
            let out = run(&["/bin/sh", &script_arg]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(1)
                && stderr.contains("E0154")
                && !String::from_utf8_lossy(&out.stdout).contains("changed")
            {
                Ok(())
            } else {
                Err(format!("exit {:?}: {stderr}", out.status.code()))
            }
        }
        "inline-code-refused" => {
            let out = run(&["/bin/sh", "-c", "echo inline"]);
            if out.status.code() == Some(1)
                && !String::from_utf8_lossy(&out.stdout).contains("inline")
            {
                Ok(())
            } else {
                Err(format!("exit {:?}", out.status.code()))
            }
        }
        "other-program-refused" => {
            let out = run(&["/bin/true"]);
            if out.status.code() == Some(1) {
                Ok(())
            } else {
                Err(format!("exit {:?}", out.status.code()))
            }
        }
        other => Err(format!("unknown identity trial {other}")),
    };
    let _ = fs::remove_dir_all(&dir);
    result.map_err(Failed::from)
}

/// Issue 13, workflow steps: `egc run --step-token` opens exactly the granted step's
/// destination for the run; without the token the destination stays closed; a token for
/// another step of an ordered workflow is refused.
fn step_trial() -> Result<(), Failed> {
    let case = Case {
        name: "step-token".into(),
        ..Case::default()
    };
    let world = World::new(&case)?;
    let dir = world.dir.clone();
    let keygen = Command::new(EGC)
        .args(["exception", "keygen", "--out"])
        .arg(dir.join("key"))
        .output()
        .map_err(|e| e.to_string())?;
    let public = String::from_utf8_lossy(&keygen.stdout)
        .split('"')
        .find(|p| p.starts_with("ed25519:"))
        .ok_or("no key printed")?
        .to_string();
    fs::create_dir_all(dir.join("pol")).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("pol/main.egress"),
        format!(
            "import std.sys\nauthority ci {{\n    key \"{public}\"\n    max_ttl 1h\n}}\ndestination build_cache {{\n    cidr 127.0.0.8/32\n    port 8080\n}}\ndestination publish {{\n    cidr 127.0.0.9/32\n    port 8080\n}}\ncapability base {{\n    syscalls sys.process_base, sys.network_client\n}}\ncapability fetch {{\n    connect build_cache\n    workflows release\n}}\ncapability upload {{\n    connect publish\n    workflows release\n}}\nagent attacker {{\n    uses base, fetch, upload\n}}\nworkflow release {{\n    orchestrator ci\n    ordered\n    step attacker uses fetch\n    step attacker uses upload\n}}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let grant = |step: &str, run: &str| {
        egc_in(
            &dir,
            &[
                "workflow",
                "grant",
                "pol",
                "release",
                step,
                "--agent",
                "attacker",
                "--key",
                "key",
                "--ttl",
                "10m",
                "--run",
                run,
                "--audit-log",
                "audit.jsonl",
            ],
        )
    };
    let script = "for a in 127.0.0.8 127.0.0.9; do if (echo hi > /dev/tcp/$a/8080) 2>/dev/null; then echo $a:ok; else echo $a:refused; fi; done";
    let run = |token: Option<&str>| {
        let mut args: Vec<String> = vec![
            format!("--net=/run/netns/{}", world.netns),
            EGC.into(),
            "run".into(),
            "pol".into(),
            "--agent".into(),
            "attacker".into(),
            "--uid".into(),
            "65534".into(),
            "--no-seccomp".into(),
        ];
        if let Some(t) = token {
            args.push("--step-token".into());
            args.push(t.into());
        }
        args.extend(["--".into(), "bash".into(), "-c".into(), script.into()]);
        Command::new("nsenter")
            .current_dir(&dir)
            .args(&args)
            .output()
            .expect("egc run")
    };
    let without = run(None);
    let out = String::from_utf8_lossy(&without.stdout).into_owned();
    if !out.contains("127.0.0.8:refused") || !out.contains("127.0.0.9:refused") {
        return Err(format!("without a step token both stay closed: {out}").into());
    }
    let run_a = format!("a-{}", world.netns);
    let run_b = format!("b-{}", world.netns);
    let token1 = grant("1", &run_a);
    let token1 = String::from_utf8_lossy(&token1.stdout).trim().to_string();
    let with = run(Some(&token1));
    let out = String::from_utf8_lossy(&with.stdout).into_owned();
    if !out.contains("127.0.0.8:ok") || !out.contains("127.0.0.9:refused") {
        return Err(format!(
            "step 1 opens exactly its destination: {out} {}",
            String::from_utf8_lossy(&with.stderr)
        )
        .into());
    }
    let token2 = grant("2", &run_b);
    let token2 = String::from_utf8_lossy(&token2.stdout).trim().to_string();
    let refused = run(Some(&token2));
    if refused.status.success() || String::from_utf8_lossy(&refused.stdout).contains(":ok") {
        return Err(format!(
            "step 2 before step 1 of a run must be refused: {}",
            String::from_utf8_lossy(&refused.stderr)
        )
        .into());
    }
    Ok(())
}

fn cgroup_root() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if !right.starts_with("cgroup2 ") {
                return None;
            }
            left.split_whitespace().nth(4).map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

fn main() {
    let mut args = Arguments::from_args();
    // Trials share the machine's cgroup and bpffs trees; one at a time keeps denial logs
    // and timings clean.
    args.test_threads = Some(1);
    let mut paths: Vec<PathBuf> = fs::read_dir(attacks_dir())
        .expect("tests/attacks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    paths.sort();
    let mut trials = Vec::new();
    let mut case_names = Vec::new();
    for path in paths {
        let case = match parse_case(&path) {
            Ok(case) => case,
            Err(e) => {
                let name = path.display().to_string();
                trials.push(Trial::test(format!("header::{name}"), move || {
                    Err(e.clone().into())
                }));
                continue;
            }
        };
        case_names.push(case.name.clone());
        for mode_name in case.modes.clone() {
            let mode = if mode_name == "enforce" {
                Mode::Enforce
            } else {
                Mode::Run
            };
            let c = case.clone();
            let m = mode.clone();
            trials.push(Trial::test(
                format!("{}::{mode_name}", case.name),
                move || confined(&c, &m, &[]),
            ));
            if mode == Mode::Run {
                for (variant, extra) in &case.variants {
                    let c = case.clone();
                    let extra = extra.clone();
                    trials.push(Trial::test(
                        format!("{}::run::{variant}", case.name),
                        move || confined(&c, &Mode::Run, &extra),
                    ));
                }
            }
            if case.control {
                let c = case.clone();
                trials.push(Trial::test(
                    format!("{}::{mode_name}::control", case.name),
                    move || control(&c, &mode),
                ));
            }
        }
    }
    let uid = AGENT_UID.to_string();
    // The runtime diagnostic codes (E0152, E0153, E0155) are asserted here, where they can
    // happen: `tests/tests/cases/codes.rs` lists these trials as their cases.
    // (trial, policy, extra `egc run` arguments, exit code, what stderr says)
    type Refusal<'a> = (&'a str, &'a str, Vec<String>, i32, &'a [&'a str]);
    let refusals: Vec<Refusal> = vec![
        (
            "no-landlock-shared-uid",
            "main",
            vec!["--uid".into(), uid.clone(), "--no-landlock".into()],
            2,
            &["error[E0153]", "without Landlock"],
        ),
        (
            "landlock-abi-0-shared-uid",
            "main",
            vec![
                "--uid".into(),
                uid.clone(),
                "--landlock-abi".into(),
                "0".into(),
            ],
            2,
            &["error[E0153]", "without Landlock"],
        ),
        (
            "unapproved-net-raw",
            "net-raw-unapproved",
            vec!["--uid".into(), uid.clone()],
            1,
            &["error[E0152]", "without a zone's approval"],
        ),
        (
            "unapproved-unix-socket",
            "unix-unapproved",
            vec!["--uid".into(), uid.clone()],
            1,
            &["error[E0152]", "without a zone's approval"],
        ),
        (
            "names-without-resolver",
            "names-no-resolver",
            vec!["--uid".into(), uid.clone()],
            1,
            &["error[E0155]", "no resolver for the DNS gateway"],
        ),
    ];
    for (name, policy, extra, code, says) in refusals {
        trials.push(Trial::test(format!("refusals::{name}"), move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            refusal(policy, &extra, code, says)
        }));
    }
    for kind in [
        "accepted",
        "deterministic",
        "tampered-policy",
        "tampered-artifact",
        "tampered-manifest",
    ] {
        trials.push(Trial::test(format!("manifest::{kind}"), move || {
            manifest_trial(kind)
        }));
    }
    for kind in [
        "pinned-script-runs",
        "changed-script-refused",
        "inline-code-refused",
        "other-program-refused",
    ] {
        trials.push(Trial::test(format!("identity::{kind}"), move || {
            identity_trial(kind)
        }));
    }
    trials.push(Trial::test("steps::run-step-token", step_trial));
    trials.push(Trial::test("threat-model::names-every-case", move || {
        threat_model_names_every_case(&case_names)
    }));
    libtest_mimic::run(&args, trials).exit();
}
