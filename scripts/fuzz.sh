#!/usr/bin/env bash
# Coverage-guided fuzzing of egc with libFuzzer through cargo-fuzz (see book/src/fuzzing.md).
#
#   scripts/fuzz.sh TARGET DURATION   one campaign; TARGET is a target name or `all`
#                                     (each target in turn for DURATION); DURATION is hours
#                                     (`2`, `0.5`) or has a unit (`90s`, `10m`, `2h`)
#   scripts/fuzz.sh --smoke [SECONDS] every target for SECONDS (default 25), as CI runs it
#   scripts/fuzz.sh --list            the targets
#
# One fuzzing process at a time (-fork=0), at low priority, with a time limit per input.
# The corpus lives in fuzz/corpus/TARGET (not committed) and is seeded on every run from
# examples/, stdlib/, tests/ui, tests/verify and tests/lower. A crash, hang or leak stops
# the run with a non-zero exit and leaves its input in fuzz/artifacts/TARGET/: add it as a
# regression case under tests/ before fixing it.
#
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 allows
# them. cargo-fuzz itself is installed with `cargo install` when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

targets=(parse_check format_roundtrip verify_differential lower_validate lsp exception signed_intent sbom_import gate_name suggest_events)

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Seconds from `90s`, `10m`, `2h` or a number of hours.
seconds() {
  local value=$1
  case $value in
    *s) echo "${value%s}" ;;
    *m) echo $((${value%m} * 60)) ;;
    *h) awk -v h="${value%h}" 'BEGIN { printf "%d", h * 3600 }' ;;
    *[!0-9.]*) echo "bad duration: $value" >&2; exit 2 ;;
    *) awk -v h="$value" 'BEGIN { printf "%d", h * 3600 }' ;;
  esac
}

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz with cargo install"
    cargo install cargo-fuzz --locked --quiet
  fi
}

# Per-target libFuzzer options: time limit per input (seconds), dictionary, and the
# largest input worth trying.
options_for() {
  case $1 in
    parse_check) echo "-timeout=10 -dict=$root/fuzz/egress.dict -max_len=2048" ;;
    format_roundtrip) echo "-timeout=10 -dict=$root/fuzz/egress.dict -max_len=1024" ;;
    exception) echo "-timeout=10 -dict=$root/fuzz/exception.dict -max_len=4096" ;;
    # A sequence of up to 64 messages, each answered within 20 s (the target's own limit).
    lsp) echo "-timeout=60 -max_len=8192" ;;
    *) echo "-timeout=10 -max_len=1024" ;;
  esac
}

# Fills fuzz/seeds/TARGET from the repository (copied at run time, never committed).
seed() {
  local target=$1 dir=$root/fuzz/seeds/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  case $target in
    parse_check | format_roundtrip)
      find examples stdlib tests/ui tests/verify tests/lower crates/egc/src/cmd/init \
        -type f \( -name '*.egress' -o -path 'tests/ui/not_utf8/*' \) -print0 |
        while IFS= read -r -d '' file; do
          cp "$file" "$dir/$(echo "$file" | tr '/' '_')"
        done
      ;;
    exception)
      printf '\001{"v":1,"id":"00","exception":"erase","agents":["bot"],"to":{"host":"a.erasure.example","port":443,"protocol":"tcp"},"issued_at":1800000000,"expires_at":1800000600,"max_uses":1,"approver":"dpo"}' >"$dir/signed-erase"
      printf '\001{"v":1,"id":"01","exception":"resolve","agents":["helper"],"to":null,"issued_at":1799999000,"expires_at":1800001000,"max_uses":null,"approver":"dpo"}' >"$dir/signed-resolve"
      printf '\000eyJ2IjoxfQ.AAAA' >"$dir/token"
      printf '\000[2001:db8::1]:443/tcp' >"$dir/target"
      printf '\002{"event":"grant","time":1}\n{"event":"expire"}\nnot json\n' >"$dir/audit"
      ;;
    sbom_import)
      find tests/sbom examples -type f -name '*.json' -print0 |
        while IFS= read -r -d '' file; do
          cp "$file" "$dir/$(echo "$file" | tr '/' '_')"
        done
      ;;
    gate_name)
      printf '\026\003\001\000\000' >"$dir/tls-start"
      printf 'GET / HTTP/1.1\r\nHost: api.corp.test\r\n\r\n' >"$dir/http"
      printf 'GET http://evil.test/ HTTP/1.1\r\nHost: api.corp.test\r\nHost: b.test\r\n\r\n' >"$dir/http-two"
      printf 'api.corp.test' >"$dir/name"
      ;;
    signed_intent)
      printf '\001{"agents":{"main.a":{"connections":"sha256:00"}},"artifacts":{"k8s/a.json":"sha256:11"},"format":"egc-intent/1","policy":{"main.egress":"sha256:22"}}\n' >"$dir/intent"
      printf '\003{"v":1,"kind":"step","id":"00","workflow":"policy.release","step":1,"agent":"policy.builder","run":"r1","issued_at":1799999900,"expires_at":1800000600,"orchestrator":"policy.ci"}' >"$dir/step"
      printf '\002eyJ2IjoxfQ.AAAA' >"$dir/token"
      ;;
    *)
      # Structured targets build their input with `arbitrary`; a few byte patterns start them.
      for i in 1 2 3 4; do
        head -c $((64 * i)) /dev/zero | tr '\0' "\\$(printf '%03o' $((i * 37)))" >"$dir/pattern-$i"
      done
      ;;
  esac
}

# Runs one target for SECONDS; prints a summary line; fails on a crash.
run_target() {
  local target=$1 secs=$2
  local corpus=$root/fuzz/corpus/$target artifacts=$root/fuzz/artifacts/$target
  local log=$root/fuzz/logs/$target-$(date +%Y%m%d-%H%M%S).log
  mkdir -p "$corpus" "$artifacts" "$root/fuzz/logs"
  seed "$target"
  local status=0
  # shellcheck disable=SC2046 # options are words
  # One verifier thread; scratch files (the audit-log target's) in memory when possible.
  local scratch=${TMPDIR:-/tmp}
  [ -d /dev/shm ] && [ -w /dev/shm ] && scratch=/dev/shm
  local timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f 'cpu %U %S' -o "$log.cpu")
  TMPDIR=$scratch RAYON_NUM_THREADS=1 RUSTC_BOOTSTRAP=1 nice -n 10 "${timer[@]}" \
    cargo fuzz run --sanitizer none "$target" "$corpus" "$root/fuzz/seeds/$target" -- \
    -fork=0 -rss_limit_mb=4096 -max_total_time="$secs" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" $(options_for "$target") \
    >"$log" 2>&1 || status=$?
  local execs cov ft units cpu=?
  [ -f "$log.cpu" ] && cpu=$(awk '/^cpu/ { printf "%d", $2 + $3 }' "$log.cpu")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  units=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  printf 'fuzz: %-20s %6ss (cpu %5ss)  execs %-10s cov %-6s ft %-6s corpus %-6s %s\n' \
    "$target" "$secs" "$cpu" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}" \
    "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (log: $log)")"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|timeout' "$log" | head -20 >&2 || true
    return "$status"
  fi
}

build() {
  ensure_cargo_fuzz
  echo "fuzz: building the targets (cargo fuzz build, debug assertions on)"
  RUSTC_BOOTSTRAP=1 nice -n 10 cargo fuzz build --sanitizer none >/dev/null
}

case ${1:-} in
  --list) printf '%s\n' "${targets[@]}" ;;
  --smoke)
    secs=${2:-25}
    build
    passed=0 failed=0
    for target in "${targets[@]}"; do
      if run_target "$target" "$secs"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    ;;
  "" | -h | --help) usage ;;
  *)
    [ $# -eq 2 ] || usage
    secs=$(seconds "$2")
    if [ "$1" = all ]; then
      chosen=("${targets[@]}")
    else
      printf '%s\n' "${targets[@]}" | grep -qx "$1" || { echo "unknown target $1 (--list)" >&2; exit 2; }
      chosen=("$1")
    fi
    build
    for target in "${chosen[@]}"; do
      run_target "$target" "$secs"
    done
    ;;
esac
