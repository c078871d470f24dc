#!/usr/bin/env bash
# `make demo`: the whole job without Docker. Starts a local Prometheus with the project's config
# and rules on a free loopback port, the clients this machine supports, runs the demo scenario
# batch (the quick batch plus a quality sweep on a real clip), and prints the advisor's report
# (HTML written beside it). Everything started here is stopped on exit or Ctrl-C, by PID.
# DEMO_BATCH replaces the batch; DEMO_QUALITY (e.g. psnr,ssim) replaces the sweep's metrics,
# which are otherwise vmaf,psnr,ssim where an ffmpeg with libvmaf is found, else psnr,ssim;
# DEMO_TARGET_QUALITY (default vmaf=65, or psnr=35 without VMAF) is the advisor's target.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${VENV:-.venv}
bin=$root/$venv/bin
demo=${DEMO_DIR:-$root/.demo}
batch=${DEMO_BATCH:-$root/ffmpeg-runner/scenarios/demo.json}
push_interval=${DEMO_PUSH_INTERVAL_S:-1}

for tool in prometheus promtool ffmpeg; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "demo: $tool is missing; run 'make setup' as root (Debian/Ubuntu) or install it" >&2
    exit 1
  }
done
[ -x "$bin/advisor" ] || { echo "demo: $bin/advisor missing; run 'make venv'" >&2; exit 1; }

rm -rf "$demo"
mkdir -p "$demo/logs" "$demo/results" "$demo/prometheus"
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    echo "demo failed (exit $status); logs in $demo/logs:" >&2
    tail -n 20 "$demo"/logs/*.log >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$("$bin/python" -c 'from wattpush_testing import free_port; print(free_port())')
prom_url="http://127.0.0.1:$port"
PROMETHEUS_RULES_DIR="$root/prometheus/rules" \
PROMETHEUS_RENDER_DIR="$demo/prometheus" \
PROMETHEUS_DATA_DIR="$demo/prometheus/data" \
PROMETHEUS_LISTEN_ADDRESS="127.0.0.1:$port" \
PROMETHEUS_RETENTION_TIME=1d \
  "$root/prometheus/entrypoint.sh" >"$demo/logs/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  curl -fsS "$prom_url/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$prom_url/-/ready" >/dev/null || { echo "demo: Prometheus did not start" >&2; exit 1; }
echo "demo: Prometheus on $prom_url (data in $demo/prometheus/data)"

export REMOTE_WRITE_URL="$prom_url/api/v1/write" PUSH_INTERVAL_S="$push_interval" \
  INSTANCE="${INSTANCE:-$(hostname)}" SHUTDOWN_TIMEOUT_S=5

"$bin/cpu-rapl-client" >"$demo/logs/cpu-rapl-client.log" 2>&1 &
pids+=($!)
echo "demo: cpu-rapl-client started (falls back to a CPU-time estimate where RAPL is unreadable)"

docker_sock=${DOCKER_HOST:-}
docker_sock=${docker_sock#unix://}
docker_sock=${docker_sock:-/var/run/docker.sock}
if [ -S "$docker_sock" ]; then
  "$bin/docker-overhead-client" >"$demo/logs/docker-overhead-client.log" 2>&1 &
  pids+=($!)
  echo "demo: docker-overhead-client started ($docker_sock)"
else
  echo "demo: no Docker socket at $docker_sock: docker-overhead-client not started"
fi

if "$bin/python" -c 'import pynvml; pynvml.nvmlInit()' >/dev/null 2>&1; then
  "$bin/gpu-nvml-client" >"$demo/logs/gpu-nvml-client.log" 2>&1 &
  pids+=($!)
  echo "demo: gpu-nvml-client started"
else
  echo "demo: NVML not available (no NVIDIA GPU/driver): gpu-nvml-client not started"
fi

sleep 2  # a little idle data before the first baseline window
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || { echo "demo: a process exited early" >&2; exit 1; }
done

quality=${DEMO_QUALITY:-}
if [ -z "$quality" ] && [ -z "${DEMO_BATCH:-}" ] && "$bin/python" -c '
import os, sys
from ffmpeg_runner.errors import QualityUnavailableError
from ffmpeg_runner.quality import choose_tool
try:
    choose_tool(["vmaf"], os.environ.get("QUALITY_FFMPEG_PATH"), os.environ.get("FFMPEG_PATH", "ffmpeg"))
except QualityUnavailableError:
    sys.exit(1)' 2>/dev/null; then
  quality=vmaf,psnr,ssim
fi
quality_args=()
[ -n "$quality" ] && quality_args=(--quality "$quality")
# A target inside what the demo's 360p sweep measures on this clip (VMAF 47-84, PSNR 31-39 dB
# against the 720p source), so the report can interpolate instead of saying "not reached".
target=${DEMO_TARGET_QUALITY:-}
if [ -z "$target" ]; then
  case "$quality" in *vmaf*) target=vmaf=65 ;; *) target=psnr=35 ;; esac
fi
echo "demo: quality ${quality:-as the batch says} (VMAF needs an ffmpeg with libvmaf: make venv)"

run_id="demo-$(date -u +%Y%m%dT%H%M%SZ)"
echo "demo: running scenario batch $batch as run $run_id"
"$bin/ffmpeg-runner" batch --file "$batch" --run-id "$run_id" --output-dir "$demo/results" \
  "${quality_args[@]}" 2>&1 | tee "$demo/logs/ffmpeg-runner.log"
manifest="$demo/results/$run_id.json"
[ -f "$manifest" ] || { echo "demo: no manifest at $manifest" >&2; exit 1; }

# The clients push every $push_interval s: wait (bounded) until the CPU counter is stored past
# the last window's end, which the advisor reads on both sides of each edge.
"$bin/python" -m wattpush_testing.wait_stored --prometheus-url "$prom_url" \
  --manifest "$manifest" --energy cpu --timeout 60
echo
# The title cost: a 90-minute title watched 1 000 000 times, at the published defaults.
title_cost=(--title-minutes 90 --views 1000000)
"$bin/advisor" report --prometheus-url "$prom_url" --results "$manifest" --allow-estimated \
  --target-quality "$target" "${title_cost[@]}" --format table
"$bin/advisor" report --prometheus-url "$prom_url" --results "$manifest" --allow-estimated \
  --target-quality "$target" "${title_cost[@]}" --format html --output "$demo/report.html" \
  >/dev/null
echo
echo "demo: HTML report: $demo/report.html"
echo "demo: manifest:    $manifest"
