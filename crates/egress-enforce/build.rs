//! Compiles the eBPF program (`bpf/egress.bpf.c`) with clang into `$OUT_DIR/egress.bpf.o`.
//!
//! Needs `clang` and the libbpf headers (Debian: `clang libbpf-dev linux-libc-dev`).
//! A failure here fails the build: enforcement must never be silently absent.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "bpf/egress.bpf.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=EGC_BPF_CLANG");
    let out_dir = match env::var_os("OUT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => fail("OUT_DIR is not set"),
    };
    let object = out_dir.join("egress.bpf.o");
    let clang = env::var("EGC_BPF_CLANG").unwrap_or_else(|_| "clang".to_string());
    let mut command = Command::new(&clang);
    command.args([
        "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
    ]);
    // asm/types.h lives in a multiarch directory on Debian.
    for dir in [
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu",
    ] {
        if std::path::Path::new(dir).exists() {
            command.arg(format!("-I{dir}"));
        }
    }
    command.arg("-c").arg(source).arg("-o").arg(&object);
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("{clang} failed on {source} ({status})")),
        Err(error) => fail(&format!(
            "cannot run {clang} ({error}); install clang and libbpf-dev (apt-get install -y clang libbpf-dev)"
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: egress-enforce build: {message}");
    std::process::exit(1)
}
