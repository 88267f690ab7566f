#!/usr/bin/env bash
# Runs every fuzz target (fuzz/README.md) for a bounded time and fails on any crash: first each
# target's regression inputs (fuzz/regressions/<target>/, every crash found so far, replayed
# once), then libFuzzer for FUZZ_SECONDS (default 60) from the committed corpus
# (fuzz/corpus/<target>/; new inputs go to a scratch folder, so the corpus is left as it is).
# FUZZ_JOBS targets run side by side (default 2, the machine's cores).
#
# Builds with `--dev` (debug assertions and overflow checks on, and a build 2x cheaper than
# `--release` with its single codegen unit: the build is most of the time here).
# Toolchain: nightly with AddressSanitizer where `cargo +nightly` works; otherwise the stable
# toolchain without a sanitizer (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags), which
# still catches every panic, overflow and failed assertion, but not what only ASan sees
# (there is no unsafe code of ours in these paths). Installs cargo-fuzz (pinned below) from
# crates.io when missing. A crash leaves its input in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ once understood.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-2}"
targets=(ws_frames json_bodies cursors normalize)
start=$(date +%s)

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  echo "== cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

# Asked of rustup's list, not by running `cargo +nightly`, which may try to download it.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  flags=(--dev --sanitizer address)
  echo "== toolchain: nightly, AddressSanitizer"
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  flags=(--dev --sanitizer none)
  echo "== toolchain: stable (no nightly here), no sanitizer"
fi

# cargo-fuzz has no --locked: check here that fuzz/Cargo.lock needs no change (after a
# dependency change in the main workspace: `cargo fetch` in fuzz/ updates it; commit it).
if ! cargo metadata --locked --format-version 1 >/dev/null; then
  echo "fuzz/Cargo.lock is out of date: run \`cargo fetch\` in fuzz/ and commit it" >&2
  exit 1
fi

echo "== build (${targets[*]})"
"${fuzz[@]}" build "${flags[@]}" 2>&1 | grep -v "^\s*Compiling " || true
# The build's own exit status is checked by running it again (a no-op when it worked).
"${fuzz[@]}" build "${flags[@]}" >/dev/null 2>&1 || { "${fuzz[@]}" build "${flags[@]}"; exit 1; }
built=$(date +%s)
echo "   built in $((built - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One target: its regressions once, then fuzzing; output in $scratch/<target>.log.
run_target() {
  local t="$1" log="$scratch/$1.log"
  local common=(-rss_limit_mb=4096 -timeout=20 -print_final_stats=1)
  if compgen -G "regressions/$t/*" >/dev/null; then
    echo "-- $t: replaying regressions/$t" >>"$log"
    "${fuzz[@]}" run "${flags[@]}" "$t" regressions/"$t"/* -- "${common[@]}" >>"$log" 2>&1 || return 1
  fi
  mkdir -p "$scratch/new-$t"
  echo "-- $t: fuzzing ${seconds}s from corpus/$t" >>"$log"
  "${fuzz[@]}" run "${flags[@]}" "$t" "$scratch/new-$t" "corpus/$t" -- \
      -max_total_time="$seconds" "${common[@]}" >>"$log" 2>&1
}

failed=()
pids=()
names=()
flush() {
  local i
  for i in "${!pids[@]}"; do
    local t="${names[$i]}"
    if wait "${pids[$i]}"; then
      echo "== $t: ok ($(grep -h "stat::number_of_executed_units" "$scratch/$t.log" | tail -1 | awk '{print $2}') runs)"
    else
      echo "== $t: FAILED"
      # The panic, the input and how to reproduce it, without the stack frames.
      grep -v -E '^\s+(#?[0-9]+:? |at )' "$scratch/$t.log" | tail -40
      failed+=("$t")
    fi
  done
  pids=()
  names=()
}
for t in "${targets[@]}"; do
  run_target "$t" &
  pids+=($!)
  names+=("$t")
  if [ "${#pids[@]}" -ge "$jobs" ]; then flush; fi
done
flush

echo "== fuzz step: $(( $(date +%s) - start )) s in all (build $((built - start)) s)"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED fuzz targets: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
echo "${#targets[@]} passed, 0 failed"
