#!/usr/bin/env bash
# One command on a fresh Debian machine with a Rust toolchain: install what the system
# lacks, build egc, and run it on examples/ (check, format check, verify, build).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cargo build --release -p egc
egc=target/release/egc

echo "== egc check examples/ stdlib/"
$egc check examples/ stdlib/
echo "== egc fmt --check examples/ stdlib/"
$egc fmt --check examples/ stdlib/
if $egc verify --help >/dev/null 2>&1; then
  echo "== egc verify examples/"
  $egc verify examples/
fi
if $egc build --help >/dev/null 2>&1; then
  out=target/egc-examples
  rm -rf "$out"
  echo "== egc build examples/ --target all --out $out"
  # Targets that cannot express an example refuse it with a coded diagnostic; build each
  # example on its own so one refusal does not hide the others.
  for example in examples/*/; do
    name=$(basename "$example")
    if $egc build "$example" --target all --out "$out/$name"; then
      echo "built $name"
    else
      echo "refused $name (see the diagnostics above)"
    fi
  done
fi
echo "done: the egc binary is $egc (or: cargo install --path crates/egc)"
