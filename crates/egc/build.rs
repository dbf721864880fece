//! Embeds the long explanation of every diagnostic code from `book/src/diagnostics/`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../book/src/diagnostics");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut pages = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            println!("cargo:rerun-if-changed={}", path.display());
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "md")
                && stem.len() == 5
                && stem.starts_with(['E', 'W'])
            {
                pages.push((stem.to_string(), path.clone()));
            }
        }
    }
    pages.sort();
    let mut code = String::from("/// (code, Markdown explanation) for every documented diagnostic code.\npub const EXPLANATIONS: &[(&str, &str)] = &[\n");
    for (name, path) in &pages {
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let _ = std::fs::write(Path::new(&out).join("explanations.rs"), code);
}
