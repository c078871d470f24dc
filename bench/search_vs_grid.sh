#!/usr/bin/env bash
# Target-quality search against a bitrate grid, back to back on this machine: the same three
# families (x264 veryfast, x264 medium, x265 fast at 640x360 on bbb), the same energy windows
# (2 repeats of 5 s, 2 s stabilization, 2 s cooldown, one 5 s baseline), VMAF 80 as the target.
# Each side runs through e2e/native_demo.sh (its own local Prometheus, cpu-rapl-client, then the
# advisor's report at vmaf=80); the wall time of each run is its manifest's ended_ms -
# started_ms (for the search, from the first probe). Prints both, their ratio and each side's
# recommendation. About 40 minutes on 2 cores; nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_DIR:-$PWD/.bench/search_vs_grid}
rm -rf "$out"
mkdir -p "$out"
for side in search grid; do
  DEMO_DIR="$out/$side" DEMO_BATCH="$PWD/bench/${side}_bench.json" \
    DEMO_TARGET_QUALITY=vmaf=80 bash e2e/native_demo.sh >"$out/$side.log" 2>&1
  echo "$side: done ($out/$side.log)"
done
"${VENV:-.venv}/bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
walls = {}
for side in ("search", "grid"):
    (path,) = (out / side / "results").glob("*.json")
    doc = json.loads(path.read_text())
    walls[side] = (doc["ended_ms"] - doc["started_ms"]) / 1000
    windows = [w for w in doc["windows"] if w["phase"] == "transcode"]
    probes = sum(len(s["probes"]) for s in doc.get("search", []))
    print(f"{side}: {walls[side]:.0f} s wall, {len(windows)} transcode windows, {probes} probes")
    for s in doc.get("search", []):
        chosen = s["chosen"]
        got = f"crf {chosen['value']:g}, vmaf {chosen['score']:.2f}" if chosen else s["message"]
        print(f"  {s['family']}: {s['status']}, {got}, {len(s['probes'])} probes")
    log = (out / f"{side}.log").read_text()
    rec = log.split("== Recommendation ==", 1)[-1].split("\n\n", 1)[0].strip()
    print("  " + rec.splitlines()[0] if rec else "  (no recommendation in the log)")
print(f"search / grid wall time: {walls['search'] / walls['grid']:.2f}")
PY
