#!/usr/bin/env bash
# Installs the system packages egc needs (Debian/Ubuntu), only those missing.
# Needs root or sudo. Safe to run again.
set -euo pipefail

packages=(
  # The verifier links the system's Z3; bindgen-based -sys crates need libclang.
  libz3-dev clang libclang-dev pkg-config
  # Runtime enforcement: eBPF programs (clang, libbpf headers, bpftool), libelf/zlib.
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  # seccomp profiles installed in tests; nftables rulesets applied in network namespaces.
  libseccomp-dev nftables iproute2
  # The attack suite: a C compiler for the probes, nsenter/setpriv, sysctl in its namespaces.
  gcc util-linux procps
  # The end-to-end editor test drives headless Neovim.
  neovim
  # The run-time names suite (crates/egc/tests/names.rs) drives real clients.
  python3 curl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed; install a Rust toolchain (https://rustup.rs) first" >&2
  exit 2
fi
