#!/usr/bin/env bash
# Smoke run of every load-test scenario at tiny scale, so the harness keeps working. It
# checks that each run completes and delivers everything; the figures themselves are not
# judged here (they come from real runs, see the README's Performance section).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p chorus -p chorus-loadtest
bin=target/debug/chorus-loadtest
server=target/debug/chorus
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0

check() { # name json-file: delivered must equal expected (connect: held == requested)
  if python3 - "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["delivered"] == r["expected"] and r["expected"] > 0
print(f'  {r["scenario"]}: delivered {r["delivered"]} of {r["expected"]}')
sys.exit(0 if ok else 1)
PY
  then passed=$((passed + 1)); else failed=$((failed + 1)); echo "  FAILED: $1"; fi
}

run() { # name args...
  local name=$1; shift
  echo "== smoke: $name"
  if "$bin" --server-bin "$server" --duration 2 --rate 5 --max-seconds 120 --json "$out/$name.json" "$@" > "$out/$name.log" 2>&1; then
    check "$name" "$out/$name.json"
  else
    failed=$((failed + 1)); echo "  FAILED: $name"; tail -5 "$out/$name.log"
  fi
}

run connect connect --connections 50 --per-process 20
run group-fanout group-fanout --groups 2 --members 20
run community-dynamics community-dynamics --groups 2 --members 10 --posters 2
run profile-sync profile-sync --friends 10 --devices 2
run release release --accounts 5 --platforms 3
echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
