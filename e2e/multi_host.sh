#!/usr/bin/env bash
# Scale-out end to end: three "hosts" (INSTANCE host-1..3) each run every client twice, one
# process per receiver, into a real VictoriaMetrics and a real Prometheus 2.42 at once. host-1
# runs a short ffmpeg-runner batch; the advisor reads the same manifest against each receiver,
# and the two rankings must be identical and the energies agree. A capture server checks that
# tenant headers and auth (Mimir / Thanos Receive / VictoriaMetrics cluster style) are sent.
#
# Usage: e2e/multi_host.sh            (needs prometheus, victoria-metrics, ffmpeg, the .venv)
# Env:   PYTHON (default .venv/bin/python), E2E_WORKDIR (default a fresh temp dir, removed
#        afterwards unless E2E_KEEP=1), E2E_SUMMARY (summary JSON path, default
#        $E2E_WORKDIR/summary.json), E2E_INSTANCES (default 3).
# Output: the last stdout line is `MULTI_HOST_RESULT <json>`; exit 0 when every check passed.
# Everything started here is stopped by PID on exit (trap), whatever happened.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PY")
INSTANCES=${E2E_INSTANCES:-3}
KEEP=${E2E_KEEP:-0}
if [[ -n "${E2E_WORKDIR:-}" ]]; then
    WORK=$E2E_WORKDIR
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/wattpush-multihost.XXXXXX")
fi
SUMMARY=${E2E_SUMMARY:-$WORK/summary.json}
LOGS=$WORK/logs
mkdir -p "$LOGS"
T_START=$(date +%s)

PIDS=()     # every background process started here, in start order
CLIENTS=()  # "pid name" of the monitoring clients (stopped before the advisor runs)

log() { printf '[multi_host %3ds] %s\n' "$(($(date +%s) - T_START))" "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}

# True while PID is a live child of this shell (guards against signalling a reused PID).
is_our_child() {
    local stat rest ppid
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    read -r _ ppid _ <<<"$rest"
    [[ "$ppid" == "$$" ]]
}

# Stop one PID: SIGTERM, up to $2 seconds of grace, then SIGKILL. Its exit status goes to
# STOP_RC (not echoed: `wait` only works in this shell, never in a $(...) subshell).
STOP_RC=0
declare -A REAPED=() TERMED=()
# One SIGTERM per process: a second one can land while Python is already finalising (default
# handlers back) and turn a clean exit 0 into 143.
term_pid() {
    if [[ -z "${TERMED[$1]:-}" ]] && is_our_child "$1"; then
        TERMED[$1]=1
        kill -TERM "$1" 2>/dev/null || true
    fi
}
stop_pid() {
    local pid=$1 grace=${2:-10} i rc=0
    if [[ -n "${REAPED[$pid]:-}" ]]; then
        STOP_RC=${REAPED[$pid]}
        return 0
    fi
    if is_our_child "$pid"; then
        term_pid "$pid"
        for ((i = 0; i < grace * 5; i++)); do
            is_our_child "$pid" || break
            sleep 0.2
        done
        if is_our_child "$pid"; then
            log "pid $pid ignored SIGTERM for ${grace}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    REAPED[$pid]=$rc
    STOP_RC=$rc
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}" 10
    done
    if ((rc != 0)); then
        log "exit $rc; logs in $LOGS"
        for f in "$LOGS"/*.log; do
            [[ -s "$f" ]] || continue
            echo "----- tail $f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [[ "$KEEP" != 1 && -z "${E2E_WORKDIR:-}" && "$rc" == 0 ]]; then
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a background process with its output in $LOGS/<name>.log; records its PID.
start_bg() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=("$!")
    LAST_PID=$!
}

# Wait (bounded) until a URL answers 2xx.
wait_http() {
    local url=$1 what=$2 tries=${3:-120} i
    for ((i = 0; i < tries; i++)); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.25
    done
    die "$what did not become ready at $url"
}

# PromQL instant query against a receiver root; prints the JSON result array.
promql() {
    curl -fsS --get "$1/api/v1/query" --data-urlencode "query=$2" | jq -c '.data.result'
}

for tool in prometheus victoria-metrics ffmpeg curl jq; do
    command -v "$tool" >/dev/null || die "$tool not found; run e2e/install_system_deps.sh"
done
[[ -x "$PY" ]] || die "$PY missing; run make setup (or set PYTHON)"

# Free loopback ports, all picked at once so they differ from each other.
read -r PROM_PORT VM_PORT CAP_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
PROM=http://127.0.0.1:$PROM_PORT
VM=http://127.0.0.1:$VM_PORT

# --- receivers --------------------------------------------------------------------------
mkdir -p "$WORK/prom" "$WORK/vm"
printf 'global:\n  scrape_interval: 1m\n' >"$WORK/prom/prometheus.yml"
start_bg prometheus prometheus --config.file="$WORK/prom/prometheus.yml" \
    --storage.tsdb.path="$WORK/prom/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
    --web.enable-remote-write-receiver --storage.tsdb.retention.time=1d
# latencyOffset=0: by default VictoriaMetrics hides the newest 30 s from queries.
start_bg victoria-metrics victoria-metrics -storageDataPath="$WORK/vm/data" \
    -httpListenAddr="127.0.0.1:$VM_PORT" -retentionPeriod=1d \
    -search.latencyOffset=0s -search.disableCache
wait_http "$PROM/-/ready" Prometheus
wait_http "$VM/health" VictoriaMetrics
log "Prometheus $PROM, VictoriaMetrics $VM"

# --- fake powercap tree for host-2.. (static counter: a real rapl source reading 0 W) ----
# host-1 (the one running ffmpeg) uses the CPU-time estimate instead, so the advisor must pick
# host-1's series by --instance and not the (preferred) rapl source of the other hosts.
PCAP=$WORK/powercap/intel-rapl:0
mkdir -p "$PCAP"
echo package-0 >"$PCAP/name"
echo 123456789 >"$PCAP/energy_uj"
echo 262143328850 >"$PCAP/max_energy_range_uj"
echo 1 >"$PCAP/enabled"

# --- clients: every instance runs each client twice, one process per receiver ------------
DOCKER_CLIENT=0
if [[ -S /var/run/docker.sock && -r /var/run/docker.sock && -w /var/run/docker.sock ]]; then
    DOCKER_CLIENT=1
fi
declare -A URL=([prom]="$PROM/api/v1/write" [vm]="$VM/api/v1/write")
export PUSH_INTERVAL_S=1 SHUTDOWN_TIMEOUT_S=5 LOG_LEVEL=INFO
for ((i = 1; i <= INSTANCES; i++)); do
    inst=host-$i
    for rcv in prom vm; do
        common=(--remote-write-url "${URL[$rcv]}" --instance "$inst")
        # The measured host samples at 0.1 s (the runner's interval); the others at 0.5 s to
        # keep 18 Python processes light on 2 cores.
        if ((i == 1)); then
            start_bg "cpu-$inst-$rcv" "$BIN/cpu-rapl-client" "${common[@]}" \
                --rapl-backend estimated --sample-interval-s 0.1
        else
            start_bg "cpu-$inst-$rcv" "$BIN/cpu-rapl-client" "${common[@]}" \
                --rapl-powercap-dir "$WORK/powercap" --sample-interval-s 0.5
        fi
        CLIENTS+=("$LAST_PID cpu-$inst-$rcv")
        start_bg "synth-$inst-$rcv" "$BIN/base-monitoring-client" "${common[@]}" \
            --collector synthetic --series 10 --sample-interval-s 0.5
        CLIENTS+=("$LAST_PID synth-$inst-$rcv")
        start_bg "gpu-$inst-$rcv" env GPU_OPTIONAL=true "$BIN/gpu-nvml-client" "${common[@]}" \
            --sample-interval-s 0.5
        CLIENTS+=("$LAST_PID gpu-$inst-$rcv")
        if ((DOCKER_CLIENT)); then
            start_bg "docker-$inst-$rcv" "$BIN/docker-overhead-client" "${common[@]}" \
                --sample-interval-s 0.5
            CLIENTS+=("$LAST_PID docker-$inst-$rcv")
        fi
    done
done
JOBS_PER_INSTANCE=$((3 + DOCKER_CLIENT))
log "started ${#CLIENTS[@]} client processes ($INSTANCES instances x $JOBS_PER_INSTANCE clients x 2 receivers)"

# --- tenant headers and auth, against a capture server (while the clients start up) ------
cat >"$WORK/capture.py" <<'EOF'
"""Answers remote write with 204 and records each request's headers and body facts."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import snappy

port, out = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            raw = snappy.uncompress(body)
            ok = True
        except Exception:
            raw, ok = b"", False
        rec = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "snappy_ok": ok,
            "has_instance": b"cap-host" in raw,
        }
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
CAP=http://127.0.0.1:$CAP_PORT
start_bg capture "$PY" "$WORK/capture.py" "$CAP_PORT" "$WORK/capture.jsonl"
CAP_PID=$LAST_PID
TOKEN="tok-$RANDOM$RANDOM-secret"
PASSWORD="pw-$RANDOM$RANDOM-secret"
umask 077
printf '%s\n' "$TOKEN" >"$WORK/token"
printf '%s\n' "$PASSWORD" >"$WORK/password"
umask 022
for ((i = 0; i < 40; i++)); do
    curl -s -o /dev/null -X POST "$CAP/probe" && break
    sleep 0.25
done
rm -f "$WORK/capture.jsonl"
# Mimir style: bearer token + X-Scope-OrgID; Thanos Receive style: basic auth + THANOS-TENANT.
start_bg cap-mimir "$BIN/base-monitoring-client" --collector synthetic --series 2 \
    --remote-write-url "$CAP/api/v1/push" --instance cap-host --push-interval-s 0.3 \
    --remote-write-headers "X-Scope-OrgID=team1" --remote-write-bearer-token-file "$WORK/token"
CAP_MIMIR=$LAST_PID
start_bg cap-thanos env REMOTE_WRITE_BASIC_AUTH_USER=wattpush \
    REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE="$WORK/password" \
    REMOTE_WRITE_HEADERS="THANOS-TENANT=team2" \
    "$BIN/base-monitoring-client" --collector synthetic --series 2 \
    --remote-write-url "$CAP/api/v1/receive" --instance cap-host --push-interval-s 0.3
CAP_THANOS=$LAST_PID
for ((i = 0; i < 80; i++)); do
    if [[ -f "$WORK/capture.jsonl" ]] &&
        grep -q '/api/v1/push' "$WORK/capture.jsonl" &&
        grep -q '/api/v1/receive' "$WORK/capture.jsonl"; then
        break
    fi
    sleep 0.25
done
stop_pid "$CAP_MIMIR" 10
CAP_MIMIR_RC=$STOP_RC
stop_pid "$CAP_THANOS" 10
CAP_THANOS_RC=$STOP_RC
stop_pid "$CAP_PID" 5
[[ -f "$WORK/capture.jsonl" ]] || die "the capture server received nothing"
AUTH_JSON=$(CAP_MIMIR_RC=$CAP_MIMIR_RC CAP_THANOS_RC=$CAP_THANOS_RC "$PY" - \
    "$WORK/capture.jsonl" "$TOKEN" "$PASSWORD" "$LOGS/cap-mimir.log" "$LOGS/cap-thanos.log" <<'EOF'
import base64, json, os, sys

path, token, password, *logs = sys.argv[1:]
recs = [json.loads(line) for line in open(path)]
mimir = [r for r in recs if r["path"] == "/api/v1/push"]
thanos = [r for r in recs if r["path"] == "/api/v1/receive"]
basic = "Basic " + base64.b64encode(f"wattpush:{password}".encode()).decode()
common = {
    "content-encoding": "snappy",
    "content-type": "application/x-protobuf",
    "x-prometheus-remote-write-version": "0.1.0",
}


def ok(rs, extra):
    want = {**common, **extra}
    return bool(rs) and all(
        all(r["headers"].get(k) == v for k, v in want.items())
        and r["snappy_ok"]
        and r["has_instance"]
        and r["headers"].get("user-agent", "").startswith("wattpush/")
        for r in rs
    )


leak = any(token in open(f).read() or password in open(f).read() for f in logs)
out = {
    "requests": len(recs),
    "mimir_bearer_and_orgid": ok(mimir, {"authorization": f"Bearer {token}", "x-scope-orgid": "team1"}),
    "thanos_basic_and_tenant": ok(thanos, {"authorization": basic, "thanos-tenant": "team2"}),
    "secrets_in_logs": leak,
    "exit_codes": [int(os.environ["CAP_MIMIR_RC"]), int(os.environ["CAP_THANOS_RC"])],
}
out["ok"] = (
    out["mimir_bearer_and_orgid"]
    and out["thanos_basic_and_tenant"]
    and not leak
    and out["exit_codes"] == [0, 0]
)
print(json.dumps(out))
EOF
)
log "auth/tenant headers: $AUTH_JSON"

# --- every instance of every client is pushing into both receivers ------------------------
EXPECTED_SERIES=$((INSTANCES * JOBS_PER_INSTANCE))
Q_INFO='count(count by (job, instance) (monitoring_client_info{instance=~"host-.*"}))'
for ((i = 0; i < 120; i++)); do
    n_prom=$(promql "$PROM" "$Q_INFO" | jq -r '.[0].value[1] // 0')
    n_vm=$(promql "$VM" "$Q_INFO" | jq -r '.[0].value[1] // 0')
    ((n_prom >= EXPECTED_SERIES && n_vm >= EXPECTED_SERIES)) && break
    sleep 0.5
done
log "client (job, instance) pairs seen: Prometheus $n_prom, VictoriaMetrics $n_vm (want $EXPECTED_SERIES)"
((n_prom == EXPECTED_SERIES && n_vm == EXPECTED_SERIES)) ||
    die "not every client instance reached both receivers"

# --- the batch on host-1 (pushes its windows to Prometheus; the manifest is what matters) --
cat >"$WORK/batch.json" <<'EOF'
{
  "description": "multi_host.sh: three 320x180 configurations on one ladder, 2 repeats, a baseline",
  "defaults": {"resolution": "320x180", "fps": 30, "bitrate": "300k", "duration": 4,
               "stabilization": 1, "cooldown": 1, "repeat": 2},
  "scenarios": [
    {"name": "x264-ultrafast", "encoder": "libx264", "preset": "ultrafast",
     "with_baseline": true, "baseline_duration": 4},
    {"name": "x264-veryfast", "encoder": "libx264", "preset": "veryfast"},
    {"name": "x265-ultrafast", "encoder": "libx265", "preset": "ultrafast"}
  ]
}
EOF
RUN_ID=multihost-$(date -u +%Y%m%dT%H%M%SZ)-$$
log "ffmpeg-runner batch $RUN_ID"
T_BATCH=$(date +%s)
# In the background + wait, so a SIGTERM to this script is handled at once, not after the batch.
start_bg ffmpeg-runner "$BIN/ffmpeg-runner" batch --file "$WORK/batch.json" --run-id "$RUN_ID" \
    --output-dir "$WORK/results" --remote-write-url "$PROM/api/v1/write" \
    --instance host-1 --push-interval-s 1
RUNNER_RC=0
wait "$LAST_PID" || RUNNER_RC=$?
REAPED[$LAST_PID]=$RUNNER_RC
((RUNNER_RC == 0)) || die "ffmpeg-runner failed (exit $RUNNER_RC)"
BATCH_S=$(($(date +%s) - T_BATCH))
MANIFEST=$WORK/results/$RUN_ID.json
[[ -f "$MANIFEST" ]] || die "no manifest at $MANIFEST"

# --- stop the clients: SIGTERM flushes what they hold; each must exit 0 -------------------
CLIENT_FAILS=()
for entry in "${CLIENTS[@]}"; do
    read -r pid name <<<"$entry"
    term_pid "$pid"
done
for entry in "${CLIENTS[@]}"; do
    read -r pid name <<<"$entry"
    stop_pid "$pid" 15
    ((STOP_RC == 0)) || CLIENT_FAILS+=("$name:$STOP_RC")
done
log "clients stopped; non-zero exits: ${CLIENT_FAILS[*]:-none}"
curl -fsS -o /dev/null "$VM/internal/force_flush" || true

# --- the advisor, once per receiver, same manifest ----------------------------------------
for rcv in prom vm; do
    root=$PROM
    [[ $rcv == vm ]] && root=$VM
    "$BIN/advisor" report --prometheus-url "$root" --results "$MANIFEST" --format json \
        --allow-estimated --instance host-1 --no-predict --output "$WORK/report-$rcv.json" \
        2>"$LOGS/advisor-$rcv.log" || die "advisor against $rcv failed (exit $?)"
done

# Without --instance the advisor takes the host the manifest names (the runner's INSTANCE,
# host-1), says so, and never adds up three hosts' power.
NO_INSTANCE_RC=0
"$BIN/advisor" report --prometheus-url "$VM" --results "$MANIFEST" --format json \
    --allow-estimated --no-predict --output "$WORK/report-noinstance.json" \
    2>"$LOGS/advisor-noinstance.log" || NO_INSTANCE_RC=$?

# --- compare --------------------------------------------------------------------------------
# Tolerance: the two receivers hold the samples of two *independent* cpu-rapl-client processes
# on host-1 (one per REMOTE_WRITE_URL), each reading /proc/stat on its own 0.1 s ticks. A window's
# energy comes from the counter interpolated at the window edges, so the two can differ by up to
# about one sample interval of power at each edge, plus the 10 ms jiffy steps of /proc/stat:
# rel. tolerance = 2 x 0.1 s / 4 s window = 5 %. VictoriaMetrics' ~12 significant digits add
# ~1e-11 relative, far below that. The ranking, which compares configurations that differ by
# far more than 5 %, must be identical.
E2E_SECONDS=$(($(date +%s) - T_START)) BATCH_S=$BATCH_S AUTH_JSON=$AUTH_JSON \
    NO_INSTANCE_RC=$NO_INSTANCE_RC NO_INSTANCE_REPORT=$WORK/report-noinstance.json \
    CLIENT_FAILS="${CLIENT_FAILS[*]:-}" N_CLIENTS=${#CLIENTS[@]} DOCKER_CLIENT=$DOCKER_CLIENT \
    "$PY" - "$WORK/report-prom.json" "$WORK/report-vm.json" "$MANIFEST" "$SUMMARY" <<'EOF'
import json, math, os, sys

prom_p, vm_p, manifest_p, summary_p = sys.argv[1:]
prom, vm = json.load(open(prom_p)), json.load(open(vm_p))
manifest = json.load(open(manifest_p))
TOL = 2 * 0.1 / 4.0
problems = []


def rankings(rep):
    return {lad["ladder"]: lad["ranking"] for lad in rep["ladders"]}


def windows(rep):
    return {(w["scenario"], w["phase"], w["repeat"]): w for w in rep["windows"]}


rk_p, rk_v = rankings(prom), rankings(vm)
if rk_p != rk_v:
    problems.append(f"rankings differ: prometheus {rk_p} vs victoriametrics {rk_v}")
if not rk_p or any(len(r) != 3 for r in rk_p.values()):
    problems.append(f"expected one ladder ranking 3 scenarios, got {rk_p}")
wp, wv = windows(prom), windows(vm)
if wp.keys() != wv.keys():
    problems.append(f"different windows: {sorted(set(wp) ^ set(wv))}")
n_manifest = len(manifest["windows"])
if len(wp) != n_manifest:
    problems.append(f"{len(wp)} windows in the report, {n_manifest} in the manifest")
diffs = []
for key in sorted(wp.keys() & wv.keys(), key=str):
    ep, ev = wp[key].get("energy_j"), wv[key].get("energy_j")
    if ep is None or ev is None or not (ep > 0 and ev > 0):
        problems.append(f"window {key}: energy missing or not positive ({ep}, {ev})")
        continue
    rel = abs(ep - ev) / max(ep, ev)
    diffs.append({"window": "/".join(map(str, key)), "prometheus_j": ep,
                  "victoriametrics_j": ev, "rel_diff": rel})
    if rel > TOL:
        problems.append(f"window {key}: energy {ep:.4f} J vs {ev:.4f} J differs by {rel:.2%}")
sc = lambda rep: {s["scenario"]: s for s in rep["scenarios"]}  # noqa: E731
scen = []
for name, sp in sc(prom).items():
    sv = sc(vm).get(name, {})
    scen.append({k: v for k, v in {
        "scenario": name,
        "rank": sp.get("rank"),
        "ppj_prometheus": sp.get("pixels_per_joule_mean"),
        "ppj_victoriametrics": sv.get("pixels_per_joule_mean"),
        "energy_j_prometheus": sp.get("energy_j_mean"),
        "energy_j_victoriametrics": sv.get("energy_j_mean"),
        "power_source": sp.get("power_source"),
    }.items()})
for s in scen:
    # host-2/3 push a (preferred) rapl source: seeing it here would mean hosts were mixed.
    if "[estimated]" not in str(s.get("power_source")) or "rapl" in str(s.get("power_source")):
        problems.append(f"{s['scenario']}: power source {s.get('power_source')!r}, expected "
                        "host-1's estimated CPU power only")
no_instance = {"exit_code": int(os.environ["NO_INSTANCE_RC"]), "took_host_1": False,
               "same_energy": False}
if no_instance["exit_code"] == 0:
    auto = json.load(open(os.environ["NO_INSTANCE_REPORT"]))
    no_instance["took_host_1"] = any("using 'host-1' (the run's host)" in w
                                     for w in auto["warnings"])
    energy = {s["scenario"]: s.get("energy_j_mean") for s in auto["scenarios"]}
    no_instance["same_energy"] = energy == {s["scenario"]: s.get("energy_j_mean")
                                            for s in vm["scenarios"]}
if no_instance != {"exit_code": 0, "took_host_1": True, "same_energy": True}:
    problems.append(f"advisor without --instance over 3 hosts: {no_instance}, expected it to "
                    "take the manifest's instance host-1, say so, and match --instance host-1")
verdicts = {
    "prometheus": [(lad.get("test") or {}).get("verdict") for lad in prom["ladders"]],
    "victoriametrics": [(lad.get("test") or {}).get("verdict") for lad in vm["ladders"]],
}
auth = json.loads(os.environ["AUTH_JSON"])
if not auth["ok"]:
    problems.append(f"auth/tenant header check failed: {auth}")
fails = os.environ["CLIENT_FAILS"].split()
if fails:
    problems.append(f"clients exited non-zero after SIGTERM: {fails}")
if manifest.get("status") != "completed":
    problems.append(f"manifest status {manifest.get('status')!r}")
summary = {
    "ok": not problems,
    "problems": problems,
    "seconds": int(os.environ["E2E_SECONDS"]),
    "batch_seconds": int(os.environ["BATCH_S"]),
    "client_processes": int(os.environ["N_CLIENTS"]),
    "docker_client": os.environ["DOCKER_CLIENT"] == "1",
    "run_id": manifest.get("run_id"),
    "ranking_prometheus": rk_p,
    "ranking_victoriametrics": rk_v,
    "rankings_identical": rk_p == rk_v,
    "energy_tolerance_rel": TOL,
    "max_energy_rel_diff": max((d["rel_diff"] for d in diffs), default=math.nan),
    "windows": diffs,
    "scenarios": scen,
    "queries": {"prometheus": prom["meta"].get("queries"), "victoriametrics": vm["meta"].get("queries")},
    "welch_verdicts": verdicts,
    "advisor_without_instance": no_instance,
    "auth": auth,
}
with open(summary_p, "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary, indent=2), file=sys.stderr)
EOF
ok=$(jq -r '.ok' "$SUMMARY")
echo "MULTI_HOST_RESULT $(jq -c 'del(.windows)' "$SUMMARY")"
[[ "$ok" == true ]] || die "checks failed: $(jq -c '.problems' "$SUMMARY")"
log "all checks passed in $(($(date +%s) - T_START)) s"
