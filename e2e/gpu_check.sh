#!/usr/bin/env bash
# The GPU proof: one run on a machine with an NVIDIA GPU proves or disproves the GPU path.
#
#   1. a local Prometheus (remote-write receiver on, a free loopback port);
#   2. gpu-nvml-client (and cpu-rapl-client, estimating where RAPL is unreadable) pushing at
#      10 Hz for at least GPU_CHECK_CLIENT_S (60) seconds;
#   3. an NVENC sweep with ffmpeg-runner: h264_nvenc, hevc_nvenc and av1_nvenc, each where the
#      ffmpeg has it and it opens on this GPU, plus libx264 beside them, at 1M, 2M and 4M on the
#      Big Buck Bunny clip (1280x720, read at its frame rate), VMAF measured after each window
#      (the quality extra's static ffmpeg has libvmaf; the encoding ffmpeg is the one whose
#      NVENC encoders open, usually the system's);
#   4. the advisor's report (JSON, HTML, table), then a short summary with a verdict.
# About 5 minutes with three NVENC encoders; the sweep is cut at GPU_CHECK_BUDGET_S (480).
#
# Usage: e2e/gpu_check.sh [--dry-run] [--out DIR]
#   --dry-run  no GPU needed: gpu-nvml-client runs on the test fake NVML and libx264 stands in
#              for NVENC (a smaller, shorter sweep); what proves the script itself here.
#   --out DIR  where everything goes (default .cache/gpu-check/<UTC time>[-dry-run]): logs/,
#              prometheus/ (its data), batch.json, plan.json, results/ (the runner's
#              manifest), report.{json,html,txt}, nvidia-smi.txt, summary.{txt,json}.
# Needs: python3 (3.11+), the venv of `make venv` (VENV, default .venv: the project with its
#        gpu and quality extras), ffmpeg, prometheus; for a real run an NVIDIA driver (NVML).
#        What is missing is listed with its fix, exit 2; no usable NVML outside --dry-run,
#        exit 3.
# Env:   GPU_CHECK_CLIENT_S (60), GPU_CHECK_BUDGET_S (480), FFMPEG_PATH (the encoding ffmpeg;
#        default: the one whose NVENC encoders open), QUALITY_FFMPEG_PATH (the VMAF ffmpeg).
# Exit 0 when the verdict is PROVEN, 1 when NOT PROVEN (the summary says why).
# Everything started here is stopped by PID on exit (trap), whatever happened.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
[[ $VENV == /* ]] || VENV=$REPO/$VENV
BIN=$VENV/bin
PY=$BIN/python
HELPER=(-m wattpush_testing.gpu_check)
CLIENT_S=${GPU_CHECK_CLIENT_S:-60}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
REPORT_RESERVE_S=60 # what the advisor and the summary need after the sweep
SAMPLE_INTERVAL_S=0.1
DRY_RUN=0
OUT=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    --out)
        [[ $# -ge 2 ]] || { echo "gpu_check: --out needs a directory" >&2; exit 2; }
        OUT=$2
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
    shift
done
[[ $CLIENT_S =~ ^[0-9]+$ && $CLIENT_S -ge 5 ]] ||
    { echo "gpu_check: GPU_CHECK_CLIENT_S='$CLIENT_S': expected whole seconds, at least 5" >&2; exit 2; }
[[ $BUDGET_S =~ ^[0-9]+$ && $BUDGET_S -gt $REPORT_RESERVE_S ]] ||
    { echo "gpu_check: GPU_CHECK_BUDGET_S='$BUDGET_S': expected whole seconds, over $REPORT_RESERVE_S" >&2; exit 2; }

T0=$(date +%s)
log() { printf '[gpu_check %3ds] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }

# --- what this machine lacks, each with its fix ---------------------------------------------
missing=()
if ! command -v python3 >/dev/null 2>&1; then
    missing+=("python3: install Python 3.11 or newer (apt-get install python3 python3-venv)")
elif ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    missing+=("python3 $(python3 -c 'import platform; print(platform.python_version())'): 3.11 or newer is needed")
fi
if [[ ! -x $PY ]]; then
    missing+=("the venv $VENV: run 'make venv' in $REPO (it installs the project with its gpu and quality extras)")
else
    for tool in gpu-nvml-client cpu-rapl-client ffmpeg-runner advisor; do
        [[ -x $BIN/$tool ]] || missing+=("$BIN/$tool: run 'make venv' (the venv lacks the project)")
    done
    "$PY" -c 'import pynvml' 2>/dev/null ||
        missing+=("pynvml in $VENV: run 'make venv' (the gpu extra, nvidia-ml-py)")
    "$PY" -c 'import wattpush_testing.gpu_check' 2>/dev/null ||
        missing+=("wattpush_testing in $VENV: run 'make venv' (the editable install of $REPO)")
fi
command -v prometheus >/dev/null 2>&1 ||
    missing+=("prometheus: apt-get install prometheus (or 'make setup' as root)")
command -v "${FFMPEG_PATH:-ffmpeg}" >/dev/null 2>&1 ||
    missing+=("ffmpeg (${FFMPEG_PATH:-ffmpeg}): apt-get install ffmpeg, or set FFMPEG_PATH")
if ((${#missing[@]})); then
    echo "gpu_check: this machine lacks what the check needs:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi
if ((!DRY_RUN)); then
    if ! nvml_error=$("$PY" -c 'import pynvml; pynvml.nvmlInit(); print(pynvml.nvmlDeviceGetCount())' 2>&1); then
        echo "gpu_check: NVML does not start, so there is no GPU to check: ${nvml_error##*$'\n'}" >&2
        echo "  fix: install the NVIDIA driver (nvidia-smi must list the GPU); without a GPU, run --dry-run" >&2
        exit 3
    fi
fi

mode=gpu
((DRY_RUN)) && mode=dry-run
[[ -n $OUT ]] || OUT=$REPO/.cache/gpu-check/$(date -u +%Y%m%dT%H%M%SZ)$( ((DRY_RUN)) && echo -dry-run)
mkdir -p "$OUT/logs" "$OUT/results"
OUT=$(cd "$OUT" && pwd)
log "mode $mode, output in $OUT"

# --- processes: started here, stopped by PID -------------------------------------------------
PIDS=()
stop_pid() { # PID [GRACE_S]: SIGTERM, then SIGKILL after the grace; 0 when it exited 0
    local pid=$1 grace=${2:-15} i rc=0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return "$rc"; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && { log "pid $pid outlived SIGTERM by ${grace}s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}
cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 10 || true; done
    ((status == 0)) || log "exit $status; logs in $OUT/logs"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_bg() { # NAME COMMAND...: runs it with its output in logs/NAME.log; its PID in LAST_PID
    local name=$1
    shift
    "$@" >"$OUT/logs/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# --- Prometheus ------------------------------------------------------------------------------
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM=http://127.0.0.1:$port
printf 'global:\n  scrape_interval: 1m\n' >"$OUT/prometheus.yml"
start_bg prometheus prometheus --config.file="$OUT/prometheus.yml" \
    --storage.tsdb.path="$OUT/prometheus" --web.listen-address="127.0.0.1:$port" \
    --web.enable-remote-write-receiver --storage.tsdb.retention.time=1d
"$PY" - "$PROM" <<'EOF' || { log "Prometheus did not become ready in 60 s (logs/prometheus.log)"; exit 1; }
import sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(sys.argv[1] + "/-/ready", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
log "Prometheus on $PROM"

# --- the clients -----------------------------------------------------------------------------
export REMOTE_WRITE_URL=$PROM/api/v1/write SAMPLE_INTERVAL_S PUSH_INTERVAL_S=1 \
    INSTANCE=gpu-check SHUTDOWN_TIMEOUT_S=10
client_start=$(date +%s.%N)
if ((DRY_RUN)); then
    start_bg gpu-nvml-client "$PY" "${HELPER[@]}" fake-client
else
    start_bg gpu-nvml-client "$BIN/gpu-nvml-client"
    nvidia-smi -q >"$OUT/nvidia-smi.txt" 2>&1 || true
fi
GPU_PID=$LAST_PID
start_bg cpu-rapl-client "$BIN/cpu-rapl-client"
CPU_PID=$LAST_PID
log "gpu-nvml-client (pid $GPU_PID) and cpu-rapl-client (pid $CPU_PID) push every second"

# --- the sweep -------------------------------------------------------------------------------
plan_args=("$OUT")
((DRY_RUN)) && plan_args+=(--dry-run)
if "$PY" "${HELPER[@]}" plan "${plan_args[@]}" 2>&1 | tee "$OUT/logs/plan.log" >&2; then
    ffmpeg=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["ffmpeg"])' "$OUT/plan.json")
    left=$((BUDGET_S - REPORT_RESERVE_S - ($(date +%s) - T0)))
    ((left >= 30)) || { log "GPU_CHECK_BUDGET_S=$BUDGET_S leaves ${left}s for the sweep"; exit 2; }
    log "sweep with $ffmpeg, at most ${left}s (logs/runner.log)"
    runner_rc=0
    FFMPEG_PATH=$ffmpeg timeout --signal=TERM --kill-after=30 "$left" \
        "$BIN/ffmpeg-runner" batch --file "$OUT/batch.json" --run-id gpu-check \
        --output-dir "$OUT/results" >"$OUT/logs/runner.log" 2>&1 || runner_rc=$?
    log "ffmpeg-runner exit $runner_rc (0: every window ok; 143: cut at the budget)"
else
    log "nothing to encode (logs/plan.log)"
fi
for pid in "$GPU_PID" "$CPU_PID"; do
    kill -0 "$pid" 2>/dev/null || { log "a client exited early (logs/)"; exit 1; }
done

# The client runs at least CLIENT_S; then both clients' last samples must be stored.
until (($(date +%s) - ${client_start%.*} >= CLIENT_S)); do sleep 0.5; done
manifest=$OUT/results/gpu-check.json
if [[ -f $manifest ]]; then
    "$PY" -m wattpush_testing.wait_stored --prometheus-url "$PROM" --manifest "$manifest" \
        --energy cpu --energy gpu --timeout 60 || log "the clients' last samples are not stored"
fi
client_end=$(date +%s.%N)
stop_pid "$GPU_PID" || log "gpu-nvml-client did not exit 0 (logs/gpu-nvml-client.log)"
stop_pid "$CPU_PID" || log "cpu-rapl-client did not exit 0 (logs/cpu-rapl-client.log)"

# --- the advisor -----------------------------------------------------------------------------
if [[ -f $manifest ]]; then
    report=("$BIN/advisor" report --prometheus-url "$PROM" --results "$manifest" --allow-estimated)
    "${report[@]}" --format json --output "$OUT/report.json" >"$OUT/logs/advisor.log" 2>&1 ||
        log "the advisor failed (logs/advisor.log)"
    "${report[@]}" --format html --output "$OUT/report.html" >>"$OUT/logs/advisor.log" 2>&1 || true
    "${report[@]}" --format table >"$OUT/report.txt" 2>>"$OUT/logs/advisor.log" || true
fi

# --- the summary -----------------------------------------------------------------------------
cat >"$OUT/times.json" <<EOF
{"started": $T0, "client_start": $client_start, "client_end": $client_end,
 "sample_interval_s": $SAMPLE_INTERVAL_S, "prometheus_url": "$PROM"}
EOF
log "summary (also in $OUT/summary.txt):"
# Its exit status is the script's: 0 PROVEN, 1 NOT PROVEN; the trap stops Prometheus.
"$PY" "${HELPER[@]}" summary "$OUT"
