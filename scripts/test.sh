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
