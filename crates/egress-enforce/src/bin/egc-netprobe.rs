//! `egc-netprobe`: tries connections and prints one JSON line per attempt.
//!
//! Used by the kernel tests, the `egc run` example and the overhead benchmark. Targets:
//! `tcp:ADDR:PORT` (connect), `udp:ADDR:PORT` (unconnected sendto: the sendmsg hooks),
//! `udpc:ADDR:PORT` (connected UDP: the connect hooks), with ADDR an IPv4 address, an
//! `[IPv6]` address, or `[::ffff:a.b.c.d]` (IPv4-mapped, sent from an IPv6 socket).
//! `bench:ADDR:PORT:N` connects N times and prints the mean and p50/p99 latency.
//! `self:FIELD` prints a field of /proc/self/status (e.g. `self:CapEff`).
//! `write:PATH` writes "0" to PATH (e.g. a `cgroup.procs`, to try to leave a cgroup).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut failed = false;
    for target in std::env::args().skip(1) {
        let line = probe(&target);
        failed |= line.contains("\"error\"");
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn errno_name(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(1) => "EPERM".into(),
        Some(13) => "EACCES".into(),
        Some(2) => "ENOENT".into(),
        Some(111) => "ECONNREFUSED".into(),
        Some(110) => "ETIMEDOUT".into(),
        Some(n) => format!("errno-{n}"),
        None => error.kind().to_string(),
    }
}

fn probe(target: &str) -> String {
    let Some((kind, rest)) = target.split_once(':') else {
        return format!("{{\"target\":{target:?},\"error\":\"bad target\"}}");
    };
    if kind == "bench" {
        return bench(target, rest);
    }
    if kind == "self" {
        return self_status(target, rest);
    }
    if kind == "write" {
        let outcome = match std::fs::write(rest, "0") {
            Ok(()) => "ok".to_string(),
            Err(e) => errno_name(&e),
        };
        return format!("{{\"target\":{target:?},\"result\":{outcome:?}}}");
    }
    let addr: SocketAddr = match rest.parse() {
        Ok(a) => a,
        Err(_) => return format!("{{\"target\":{target:?},\"error\":\"bad address\"}}"),
    };
    let result = match kind {
        "tcp" => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ()),
        "udp" => udp(addr, false),
        "udpc" => udp(addr, true),
        _ => return format!("{{\"target\":{target:?},\"error\":\"unknown kind\"}}"),
    };
    let outcome = match result {
        Ok(()) => "ok".to_string(),
        Err(e) => errno_name(&e),
    };
    format!("{{\"target\":{target:?},\"result\":{outcome:?}}}")
}

fn udp(addr: SocketAddr, connected: bool) -> std::io::Result<()> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let socket = UdpSocket::bind(local)?;
    if connected {
        socket.connect(addr)?;
        socket.send(b"egc-probe")?;
    } else {
        socket.send_to(b"egc-probe", addr)?;
    }
    Ok(())
}

fn bench(target: &str, rest: &str) -> String {
    let Some((addr, count)) = rest.rsplit_once(':') else {
        return format!("{{\"target\":{target:?},\"error\":\"bad bench target\"}}");
    };
    let (Ok(addr), Ok(count)) = (addr.parse::<SocketAddr>(), count.parse::<usize>()) else {
        return format!("{{\"target\":{target:?},\"error\":\"bad bench target\"}}");
    };
    let mut samples: Vec<u128> = Vec::with_capacity(count);
    let mut failures = 0usize;
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        match TcpStream::connect(addr) {
            Ok(stream) => {
                samples.push(t.elapsed().as_nanos());
                reset_on_close(&stream);
                drop(stream);
            }
            Err(_) => failures += 1,
        }
    }
    let total = start.elapsed();
    samples.sort_unstable();
    let pick = |q: f64| -> u128 {
        if samples.is_empty() {
            return 0;
        }
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples.get(i).copied().unwrap_or(0)
    };
    let mean = if samples.is_empty() {
        0
    } else {
        samples.iter().sum::<u128>() / samples.len() as u128
    };
    let per_sec = if total.as_secs_f64() > 0.0 {
        samples.len() as f64 / total.as_secs_f64()
    } else {
        0.0
    };
    format!(
        "{{\"target\":{target:?},\"connects\":{},\"failures\":{failures},\"mean_ns\":{mean},\"p50_ns\":{},\"p99_ns\":{},\"connects_per_sec\":{per_sec:.0}}}",
        samples.len(),
        pick(0.5),
        pick(0.99)
    )
}

fn self_status(target: &str, field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "missing".to_string());
    format!("{{\"target\":{target:?},\"result\":{value:?}}}")
}

/// SO_LINGER 0: close with RST so a long benchmark leaves no TIME_WAIT sockets behind
/// (which would exhaust the ephemeral ports).
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket with a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
