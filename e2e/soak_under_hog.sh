#!/usr/bin/env bash
# The flake check: the whole `make test`, RUNS times in a row, beside a busy loop on one core.
# A test that fails here and passes on a quiet machine has a bound that does not hold on a
# loaded host: fix its cause, never retry it.
#
# Usage: e2e/soak_under_hog.sh [RUNS] [--out DIR]
#   RUNS       how many consecutive `make test` runs (default 3)
#   --out DIR  one log per run and summary.txt (default .cache/soak/<UTC time>)
# Env:   SOAK_HOG_LIMIT_S (14400): the busy loop ends by itself after this, even if this
#        script is killed; it is stopped by PID when the runs end.
# Exit 0 when every run passed, 1 otherwise (summary.txt names each run's result line).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=3
OUT=""
while (($#)); do
  case $1 in
  --out)
    OUT=${2:?--out needs a directory}
    shift 2
    ;;
  -h | --help)
    sed -n '2,11p' "$0"
    exit 0
    ;;
  *)
    [[ $1 =~ ^[1-9][0-9]*$ ]] || {
      echo "soak_under_hog.sh: RUNS must be a positive whole number, got '$1'" >&2
      exit 2
    }
    RUNS=$1
    shift
    ;;
  esac
done
OUT=${OUT:-$REPO/.cache/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
LIMIT_S=${SOAK_HOG_LIMIT_S:-14400}

python3 -c "
import time
end = time.monotonic() + float('$LIMIT_S')
while time.monotonic() < end:
    pass
" &
HOG=$!
trap 'kill "$HOG" 2>/dev/null || true; wait "$HOG" 2>/dev/null || true' EXIT

failed=0
: >"$OUT/summary.txt"
for ((i = 1; i <= RUNS; i++)); do
  start=$(date +%s)
  rc=0
  make -C "$REPO" test >"$OUT/run-$i.log" 2>&1 || rc=$?
  result=$(grep -E '^=+ .*(passed|failed|error).* in ' "$OUT/run-$i.log" | tail -1 || true)
  line="run $i: exit $rc after $(($(date +%s) - start)) s; ${result:-no pytest summary (see run-$i.log)}"
  echo "$line" | tee -a "$OUT/summary.txt"
  ((rc == 0)) || failed=1
done
echo "logs: $OUT"
exit "$failed"
