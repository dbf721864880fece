#!/usr/bin/env bash
# Runs every test: formatting, lints, the whole workspace's tests (including the kernel
# tests, which need root), and the editor package build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
export CARGO_TERM_COLOR=never

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast
if [ -f editors/vscode/package.json ] && command -v npm >/dev/null; then
  (cd editors/vscode && npm ci --no-audit --no-fund && npm run package)
fi

# Fuzzing smoke run (fuzz/, book/src/fuzzing.md): every libFuzzer target for a short,
# bounded time, seeded with the repository's policies and regression cases; any crash,
# hang or leak fails. cargo-fuzz is installed with `cargo install` when missing; without it the run is
# skipped with a message. EGC_FUZZ_SECONDS sets the time per target (0 skips).
fuzz_seconds=${EGC_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
  if cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet; then
    bash scripts/fuzz.sh --smoke "$fuzz_seconds"
  else
    echo "fuzz: cargo-fuzz is not available and could not be installed; smoke run skipped"
  fi
fi
