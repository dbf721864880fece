//! Embeds every `stdlib/*.egress` module into the checker, so `egc` works wherever it is
//! installed. Reading the files happens at build time; the checker itself does no I/O.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut modules = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            println!("cargo:rerun-if-changed={}", path.display());
            if path.extension().is_some_and(|e| e == "egress") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    modules.push((stem.to_string(), path.clone()));
                }
            }
        }
    }
    modules.sort();
    let mut code = String::from("/// The embedded stdlib modules: (name, source).\npub const MODULES: &[(&str, &str)] = &[\n");
    for (name, path) in &modules {
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let _ = std::fs::write(Path::new(&out).join("stdlib_modules.rs"), code);
}
