#!/usr/bin/env bash
# The real stack end to end: images built from the Dockerfiles, `docker-compose_helper.sh up`,
# the quick batch through `run-batch`, the advisor in its container, and (E2E_FAULTS=1) faults:
# Prometheus stopped 60 s with a client restarted meanwhile, a client SIGKILLed.
#
#   e2e/docker_stack.sh            (make e2e-docker, .ci/run)
#
# Without a reachable Docker engine (or with E2E_PRIVATE_DOCKERD=1) it starts a private one:
# vfs storage, its own data-root/exec-root/socket/pidfile under /tmp, --iptables=false, stopped
# by PID and removed on exit, also on failure. No registry is needed: the base image is a
# debootstrap minbase (python3, python3-venv) imported with `docker import` and cached as a
# tarball under .cache/e2e/ (git-ignored). Python packages come from build/wheels (make wheels).
#
# Settings (environment): E2E_FAULTS=1|0, E2E_OUTAGE_S=60, E2E_BUILD_GPU=1|0, E2E_BUILD_JOBS=3
# (image builds side by side), E2E_REPEAT=2 (transcode windows per scenario: a scenario keeps
# its energy when one window is lost),
# E2E_PRIVATE_DOCKERD=auto|1, E2E_REPORT_DIR (default .cache/e2e/last-run), E2E_DEBIAN_MIRROR
# (default: the first URI of this host's apt sources).
set -euo pipefail

ROOT=${E2E_ROOT:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)}
CACHE=$ROOT/.cache/e2e
SUITE=bookworm
BASE_TAR=$CACHE/$SUITE-minbase-python3.tar
BASE_IMAGE=wattpush-e2e/$SUITE-python3:local
PROJECT=wattpush-e2e
E2E_FAULTS=${E2E_FAULTS:-1}
E2E_OUTAGE_S=${E2E_OUTAGE_S:-60}
E2E_BUILD_GPU=${E2E_BUILD_GPU:-1}
E2E_BUILD_JOBS=${E2E_BUILD_JOBS:-3}
[[ "$E2E_BUILD_JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "E2E_BUILD_JOBS='$E2E_BUILD_JOBS' is not a whole number >= 1; fix: e.g. E2E_BUILD_JOBS=3" >&2; exit 2; }
E2E_REPEAT=${E2E_REPEAT:-2}
[[ "$E2E_REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "E2E_REPEAT='$E2E_REPEAT' is not a whole number >= 1; fix: e.g. E2E_REPEAT=2" >&2; exit 2; }
E2E_PRIVATE_DOCKERD=${E2E_PRIVATE_DOCKERD:-auto}
REPORT_DIR=${E2E_REPORT_DIR:-$CACHE/last-run}

mkdir -p "$CACHE" "$REPORT_DIR"
TIMES=$REPORT_DIR/stage-times.txt
: >"$TIMES"
T0=$(date +%s)
STAGE=""
STAGE_START=$T0

log() { printf '[e2e %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() {
    log "FAIL: $*" >&2
    exit 1
}
stage() {
    local now
    now=$(date +%s)
    if [[ -n "$STAGE" ]]; then
        printf '%-32s %5ss\n' "$STAGE" "$((now - STAGE_START))" >>"$TIMES"
    fi
    STAGE=${1:-}
    STAGE_START=$now
    [[ -n "$STAGE" ]] && log ">>> $STAGE"
    return 0
}

WORK=""
DOCKERD_PID=""
STACK_UP=0

# ------------------------------------------------------------------ teardown

stop_pid() { # PID GRACE_S
    local pid=$1 grace=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((rc != 0)) && ((STACK_UP)); then
        log "failure: last container logs follow"
        helper logs 2>&1 | tail -n 80
    fi
    stage teardown
    if ((STACK_UP)); then
        timeout 180 "$ROOT/docker-compose_helper.sh" down --volumes >/dev/null 2>&1 ||
            log "compose down failed (the engine is stopped anyway)"
    fi
    if [[ -n "$DOCKERD_PID" ]]; then
        stop_pid "$DOCKERD_PID" 30
        wait "$DOCKERD_PID" 2>/dev/null
        local cpid
        cpid=$(cat "$WORK/exec/containerd/containerd.pid" 2>/dev/null || true)
        [[ -n "$cpid" ]] && stop_pid "$cpid" 10
        # Whatever the engine left mounted under its own directories, deepest first.
        awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null; done
        rm -rf "$WORK"
    fi
    stage ""
    log "stage times (s):"
    cat "$TIMES"
    printf '%-32s %5ss\n' total "$(($(date +%s) - T0))" | tee -a "$TIMES"
    if ((rc == 0)); then log "PASS"; else log "FAILED (rc $rc); artefacts in $REPORT_DIR"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ engine

start_private_dockerd() {
    [[ $(id -u) == 0 ]] || die "a private Docker engine needs root; fix: run as root or start Docker"
    command -v dockerd >/dev/null || die "dockerd not found; fix: apt-get install docker.io"
    WORK=$(mktemp -d /tmp/wpe2e-XXXXXX) # short: unix socket paths are limited to 108 bytes
    local sock=$WORK/docker.sock i extra=()
    read -r -a extra <<<"${E2E_DOCKERD_ARGS:-}"
    # --iptables=false: no NAT/filter rules on this host. The default bridge stays, so compose
    # networks (user bridges) work; published ports go through docker-proxy.
    dockerd --storage-driver vfs --iptables=false --ip6tables=false \
        --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
        -H "unix://$sock" "${extra[@]}" >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for ((i = 0; i < 600; i++)); do
        kill -0 "$DOCKERD_PID" 2>/dev/null || {
            tail -n 30 "$WORK/dockerd.log" >&2
            DOCKERD_PID=""
            die "dockerd exited at start (log above)"
        }
        docker -H "unix://$sock" version >/dev/null 2>&1 && break
        sleep 0.1
    done
    docker -H "unix://$sock" version >/dev/null 2>&1 || die "dockerd did not answer in 60 s"
    export DOCKER_HOST=unix://$sock DOCKER_SOCKET=$sock
    log "private dockerd pid $DOCKERD_PID at $sock"
}

# ------------------------------------------------------------------ base image

apt_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [[ -z "$uri" ]] && uri=$(awk '$1 == "deb" && $0 ~ / '"$SUITE"' / {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    uri=${E2E_DEBIAN_MIRROR:-$uri}
    [[ -n "$uri" ]] || die "no Debian mirror in /etc/apt/sources.list*; fix: set E2E_DEBIAN_MIRROR to the mirror URL apt uses"
    echo "$uri"
}

make_base_tar() {
    [[ -s "$BASE_TAR" ]] && return 0
    command -v debootstrap >/dev/null || die "debootstrap not found; fix: apt-get install debootstrap"
    local mirror tmp
    mirror=$(apt_mirror)
    tmp=$(mktemp -d "$CACHE/rootfs-XXXXXX")
    mkdir -p "$CACHE/debs"
    log "debootstrap $SUITE minbase from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv --cache-dir="$CACHE/debs" \
        "$SUITE" "$tmp/rootfs" "$mirror" >"$REPORT_DIR/debootstrap.log" 2>&1 ||
        die "debootstrap failed (see $REPORT_DIR/debootstrap.log)"
    rm -rf "$tmp/rootfs"/usr/share/{doc,man,locale} "$tmp/rootfs"/var/lib/apt/lists/* \
        "$tmp/rootfs"/var/cache/apt/archives/*.deb
    tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
    mv "$tmp/rootfs.tar" "$BASE_TAR" # atomic: never a half tarball in the cache
    rm -rf "$tmp"
}

import_base_image() {
    # An imported image has no config: give it the PATH the official images set, or the
    # Dockerfiles' `ENV PATH=/opt/wattpush/bin:$PATH` would drop /usr/bin.
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
        "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}

# Can a build container reach the Debian mirror through the default bridge (no NAT here)?
probe_build_network() {
    local mirror
    mirror=$(apt_mirror)
    if timeout 30 docker run --rm "$BASE_IMAGE" python3 -c \
        "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/dists/$SUITE/Release', timeout=10)" \
        "$mirror" >/dev/null 2>&1; then
        BUILD_NET=default
    else
        BUILD_NET=host
    fi
    log "build containers reach $mirror with --network=$BUILD_NET"
    echo "build_network=$BUILD_NET" >>"$REPORT_DIR/facts.txt"
}

# ------------------------------------------------------------------ images

build() { # COMPONENT [extra docker build args]
    local comp=$1 start
    shift
    start=$(date +%s)
    DOCKER_BUILDKIT=0 docker build -q -f "$ROOT/$comp/Dockerfile" --network "$BUILD_NET" \
        -t "wattpush/$comp:latest" "$@" "$ROOT" >"$REPORT_DIR/build-$comp.log" 2>&1 || {
        tail -n 40 "$REPORT_DIR/build-$comp.log" >&2
        die "docker build of $comp failed (log above, full: $REPORT_DIR/build-$comp.log)"
    }
    printf '  build %-28s %5ss\n' "$comp" "$(($(date +%s) - start))" >>"$TIMES"
}

# Builds run side by side, E2E_BUILD_JOBS at a time: most of a build on a copying storage
# driver is one thread copying files, or waiting on the Debian mirror.
running() { # PID...: how many still run (not `jobs`: a private dockerd is a job too)
    local n=0 pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && n=$((n + 1)); done
    echo "$n"
}

build_parallel() { # "COMPONENT [build args]"...
    local spec comp pids=() comps=() failed=() i
    for spec in "$@"; do
        read -r -a comp <<<"$spec"
        build "${comp[@]}" &
        pids+=($!)
        comps+=("${comp[0]}")
        while (($(running "${pids[@]}") >= E2E_BUILD_JOBS)); do sleep 1; done
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed+=("${comps[$i]}")
    done
    ((${#failed[@]} == 0)) || die "docker build of ${failed[*]} failed (logs above)"
}

# ------------------------------------------------------------------ stack

helper() { "$ROOT/docker-compose_helper.sh" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

prom_query() { # PROMQL [TIME] -> JSON result list
    python3 - "$PROM_URL" "$@" <<'EOF'
import json, sys, urllib.parse, urllib.request
url, q = sys.argv[1], sys.argv[2]
params = {"query": q}
if len(sys.argv) > 3:
    params["time"] = sys.argv[3]
with urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode(params), timeout=10) as r:
    print(json.dumps(json.load(r)["data"]["result"]))
EOF
}

wait_for() { # TIMEOUT_S DESCRIPTION COMMAND...
    local timeout=$1 what=$2 i
    shift 2
    for ((i = 0; i < timeout; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "$what not reached within ${timeout}s"
}

series_present() { # PROMQL: at least one series
    [[ "$(prom_query "$1")" != "[]" ]]
}

container_of() { docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n 1; }

# ------------------------------------------------------------------ faults

# outage: Prometheus stopped E2E_OUTAGE_S while the clients sample, cpu-rapl-client restarted
# in the middle of it; then every stored sample of the window is read back raw. sigkill: the
# cpu-rapl-client process is SIGKILLed (a crash: the restart policy brings it back) and the
# samples between the last stored one and the kill are the loss.
faults() { # outage|sigkill|batch
    python3 - "$1" "$PROM_URL" "$PROJECT" "$E2E_OUTAGE_S" "$REPORT_DIR" \
        "${CPU_RAPL_SAMPLE_INTERVAL_S:-0.1}" "${CPU_RAPL_PUSH_INTERVAL_S:-4}" <<'EOF'
import json, subprocess, sys, time, urllib.parse, urllib.request

mode, prom, project, outage_s, report_dir, interval_s, push_s = sys.argv[1:]
outage_s, interval_s, push_s = float(outage_s), float(interval_s), float(push_s)
GAP = 1.5 * interval_s  # one interval plus scheduling jitter
SERIES = {  # compose service (also the client's job label) -> the series checked
    "cpu-rapl-client": 'cpu_energy_joules_total{job="cpu-rapl-client",zone="package"}',
    "docker-overhead-client": 'docker_engine_cpu_seconds_total{process="dockerd"}',
}

def log(msg):
    print(f"[faults] {msg}", flush=True)

def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()

def container(service):
    return docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
                  "--filter", f"label=com.docker.compose.service={service}").splitlines()[0]

def query(q, at=None):
    params = {"query": q, **({"time": f"{at:.3f}"} if at else {})}
    url = prom + "/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.load(r)["data"]["result"]

def ready():
    try:
        with urllib.request.urlopen(prom + "/-/ready", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False

def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.5)
    raise SystemExit(f"{what} not reached within {timeout:.0f}s")

def raw(series, start, end):
    """Every stored (timestamp_s, value) of each matching series in [start, end]."""
    rng = max(1, int(end - start) + 1)
    out = {}
    for r in query(f"{series}[{rng}s]", at=end):
        ts = [(float(t), float(v)) for t, v in r["values"] if float(t) >= start]
        out[json.dumps(r["metric"], sort_keys=True)] = ts
    return out

def gaps(ts, allowed=()):
    """(max gap, gaps > GAP outside the allowed (start, end) windows, duplicate count)."""
    big, worst = [], 0.0
    for (a, _), (b, _) in zip(ts, ts[1:]):
        worst = max(worst, b - a)
        if b - a > GAP and not any(lo <= a + interval_s and b - interval_s <= hi for lo, hi in allowed):
            big.append((round(a, 3), round(b - a, 3)))
    dups = len(ts) - len({t for t, _ in ts})
    return worst, big, dups

results = {}
if mode == "outage":
    prom_c, rapl_c = container("prometheus"), container("cpu-rapl-client")
    time.sleep(3 * push_s)  # a steady state before the fault
    t0 = time.time()
    docker("stop", "-t", "10", prom_c)
    t_stopped = time.time()
    log(f"prometheus stopped ({t_stopped - t0:.1f}s); outage {outage_s:.0f}s")
    time.sleep(outage_s / 2)
    r0 = time.time()
    # No -t: the container's own stop timeout (compose's stop_grace_period), as for a user's
    # `docker restart`; the client must spool what Prometheus did not take before it exits.
    grace = docker("inspect", "-f", "{{.Config.StopTimeout}}", rapl_c)
    docker("restart", rapl_c)
    r1 = time.time()
    log(f"cpu-rapl-client restarted during the outage in {r1 - r0:.1f}s (stop timeout {grace}s)")
    time.sleep(max(0.0, t_stopped + outage_s - time.time()))
    docker("start", prom_c)
    t_started = time.time()
    wait(ready, 180, "prometheus ready after restart")
    t_ready = time.time()
    log(f"prometheus back, ready after {t_ready - t_started:.1f}s")
    # Clients retry with backoff and replay their spool: give them a few push intervals.
    time.sleep(6 * push_s + 10)
    end = time.time() - 2 * push_s
    ok = True
    for svc, series in SERIES.items():
        allowed = [(r0, r1 + 15)] if svc == "cpu-rapl-client" else []
        found = raw(series, t0 - 5, end)
        if not found:
            log(f"FAIL {svc}: no samples of {series}")
            ok = False
        for key, ts in found.items():
            worst, big, dups = gaps(ts, allowed)
            restart_gap = max([b - a for (a, _), (b, _) in zip(ts, ts[1:]) if r0 - 1 <= a <= r1 + 15] or [0])
            results[f"{svc} {key}"] = dict(samples=len(ts), span_s=round(ts[-1][0] - ts[0][0], 1) if ts else 0,
                                          max_gap_s=round(worst, 3), gaps_over=big[:10],
                                          n_gaps_over=len(big), duplicates=dups,
                                          restart_gap_s=round(restart_gap, 3))
            log(f"{svc}: {len(ts)} samples, max gap {worst:.3f}s, gaps > {GAP:.2f}s outside "
                f"the restart: {len(big)} {big[:5]}, duplicates {dups}, restart gap {restart_gap:.1f}s")
            ok &= not big and dups == 0
    results.update(outage_s=outage_s, restart_window_s=round(r1 - r0, 2))
elif mode == "sigkill":
    rapl_c = container("cpu-rapl-client")
    time.sleep(3 * push_s)
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", rapl_c))
    restarts0 = int(docker("inspect", "-f", "{{.RestartCount}}", rapl_c))
    t_kill = time.time()
    subprocess.run(["kill", "-KILL", str(pid)], check=True)
    log(f"SIGKILL pid {pid} at {t_kill:.3f}")
    def restarted():
        st = docker("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", rapl_c).split()
        return st[0] == "true" and int(st[1]) > restarts0
    try:
        wait(restarted, 30, "restart by the restart policy")
        how = "restart policy"
    except SystemExit:
        docker("start", rapl_c)
        how = "docker start"
    log(f"cpu-rapl-client back ({how}) after {time.time() - t_kill:.1f}s")
    time.sleep(4 * push_s + 5)
    found = raw(SERIES["cpu-rapl-client"], t_kill - 60, time.time() - push_s)
    ok = bool(found)
    for key, ts in found.items():
        before = [t for t, _ in ts if t <= t_kill]
        after = [t for t, _ in ts if t > t_kill]
        last = before[-1] if before else t_kill - 60
        lost_s = t_kill - last
        dups = len(ts) - len({t for t, _ in ts})
        results[key] = dict(last_stored_before_kill_s=round(lost_s, 3),
                            lost_samples=max(0, round(lost_s / interval_s) - 1),
                            first_after_s=round(after[0] - t_kill, 2) if after else None,
                            duplicates=dups, push_interval_s=push_s)
        log(f"loss: last stored sample {lost_s:.2f}s before the kill (~{max(0, round(lost_s / interval_s) - 1)} "
            f"samples; bound PUSH_INTERVAL_S={push_s}); first sample after {results[key]['first_after_s']}s; duplicates {dups}")
        ok &= lost_s <= push_s + interval_s and dups == 0 and bool(after)
elif mode == "batch":
    # Not a fault: how the clients sampled while the batch loaded the machine. Reported, not
    # judged (the advisor judges coverage per window); gaps here point at a stalled client.
    m = json.load(open(f"{report_dir}/manifest.json"))
    start = min(w["start_ms"] for w in m["windows"]) / 1000 - 5
    end = max(w["end_ms"] for w in m["windows"]) / 1000 + 5
    span = f"{int(end - start) + 1}s"
    ok = True
    for svc, series in SERIES.items():
        for key, ts in raw(series, start, end).items():
            worst, big, dups = gaps(ts)
            lag = query(f'max_over_time(monitoring_client_sampling_lag_seconds{{job="{svc}"}}[{span}])', at=end)
            skipped = query(f'increase(monitoring_client_skipped_ticks_total{{job="{svc}"}}[{span}])', at=end)
            lag_s = max((float(r["value"][1]) for r in lag), default=float("nan"))
            skipped_n = sum(float(r["value"][1]) for r in skipped)
            results[f"{svc} {key}"] = dict(samples=len(ts), max_gap_s=round(worst, 3), gaps_over=big[:10],
                                          duplicates=dups, max_sampling_lag_s=round(lag_s, 3),
                                          skipped_ticks=round(skipped_n, 1))
            log(f"batch: {svc}: {len(ts)} samples, max gap {worst:.3f}s, gaps > {GAP:.2f}s: {big[:5]}, "
                f"max sampling lag {lag_s:.3f}s, skipped ticks {skipped_n:.0f}")
with open(f"{report_dir}/faults-{mode}.json", "w") as f:
    json.dump(results, f, indent=1)
sys.exit(0 if ok else 1)
EOF
}

# ------------------------------------------------------------------ main

stage engine
if [[ "$E2E_PRIVATE_DOCKERD" != 1 ]] && docker version >/dev/null 2>&1; then
    log "using the reachable Docker engine (${DOCKER_HOST:-default socket})"
    : "${DOCKER_SOCKET:=/var/run/docker.sock}"
    export DOCKER_SOCKET
else
    start_private_dockerd
fi
docker info --format 'engine {{.ServerVersion}} storage {{.Driver}} cgroup {{.CgroupVersion}}' >>"$REPORT_DIR/facts.txt"

stage base-image
if [[ "${E2E_SKIP_BUILD:-0}" != 1 ]]; then
    make_base_tar
    import_base_image
    probe_build_network
fi

stage wheels
if ! ls "$ROOT"/build/wheels/core/wattpush-*.whl >/dev/null 2>&1; then
    make -C "$ROOT" wheels >"$REPORT_DIR/wheels.log" 2>&1 || die "make wheels failed (see $REPORT_DIR/wheels.log)"
fi

stage build-images
if [[ "${E2E_SKIP_BUILD:-0}" == 1 ]]; then
    BUILD_NET=skip # reuse the images already in the engine (iterating on the later stages)
fi
[[ "${E2E_SKIP_BUILD:-0}" == 1 ]] || {
build_parallel "base-monitoring-client --build-arg BASE_IMAGE=$BASE_IMAGE" \
    "prometheus --build-arg BASE_IMAGE=$BASE_IMAGE"
images=(ffmpeg-runner advisor cpu-rapl-client docker-overhead-client) # longest first
if [[ "$E2E_BUILD_GPU" == 1 ]]; then images+=(gpu-nvml-client); fi
build_parallel "${images[@]}"
}
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' >"$REPORT_DIR/images.txt"

stage compose-up
PROM_PORT=$(free_port)
GRAFANA_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
export COMPOSE_PROJECT_NAME=$PROJECT PRIVILEGED=true NO_BUILD=1 PROMETHEUS_PORT=$PROM_PORT \
    GRAFANA_PORT PYTHON_BASE_IMAGE=$BASE_IMAGE PROMETHEUS_BASE_IMAGE=$BASE_IMAGE \
    WATTPUSH_INSTANCE=e2e-host REPORT_ALLOW_ESTIMATED=true COMPOSE_PROFILES='' \
    COMPOSE_HTTP_TIMEOUT=300
GRAFANA_IMAGE=${GRAFANA_IMAGE:-$(awk -F= '$1 == "GRAFANA_IMAGE" {print $2}' "$ROOT/.env")}
GRAFANA_AVAILABLE=1
docker image inspect "$GRAFANA_IMAGE" >/dev/null 2>&1 || GRAFANA_AVAILABLE=0
echo "grafana_image_present=$GRAFANA_AVAILABLE ($GRAFANA_IMAGE)" >>"$REPORT_DIR/facts.txt"
# A privileged container gets every capability; runc fails ("unable to apply caps") where this
# host's bounding set lacks one (sandboxes without CAP_SYS_RESOURCE), and without AppArmor the
# confined mode cannot run either. Then cpu-rapl-client runs unprivileged through the helper's
# WATTPUSH_EXTRA_COMPOSE_FILES (it estimates: there is no RAPL access to lose).
# The helper's doctor is what checks that (PRIVILEGED=true is exported above).
doctor=$(helper doctor 2>&1 || true)
lacks=$(sed -n 's/.*capability bounding set lacks \([A-Z_ ]*\):.*/\1/p' <<<"$doctor")
if [[ -n "$lacks" ]]; then
    WATTPUSH_EXTRA_COMPOSE_FILES=$REPORT_DIR/compose.no-privileged.yml
    printf 'version: "3.8"\nservices:\n  cpu-rapl-client:\n    privileged: false\n    user: "10001:10001"\n' >"$WATTPUSH_EXTRA_COMPOSE_FILES"
    export WATTPUSH_EXTRA_COMPOSE_FILES
    echo "privileged=off (the capability bounding set lacks $lacks)" >>"$REPORT_DIR/facts.txt"
fi
STACK_UP=1
# The helper prints a generated Grafana password once: keep it out of the saved log.
helper up 2>&1 | sed -u '/admin password/{n;s/.*/  <hidden>/}' | tee "$REPORT_DIR/up.log"
[[ ${PIPESTATUS[0]} == 0 ]] || die "docker-compose_helper.sh up failed"
if ((!GRAFANA_AVAILABLE)); then
    grep -q "grafana is not started: its image $GRAFANA_IMAGE is not on this host" "$REPORT_DIR/up.log" ||
        die "the helper did not report that it left Grafana out (its image is missing)"
    [[ -z "$(container_of grafana)" ]] || die "a grafana container runs although its image is missing"
fi
wait_for 120 "Prometheus ready at $PROM_URL" python3 -c \
    "import urllib.request; urllib.request.urlopen('$PROM_URL/-/ready', timeout=3)"
wait_for 120 "cpu-rapl-client series in Prometheus" series_present 'cpu_energy_joules_total'
wait_for 120 "docker-overhead-client series in Prometheus" series_present '{job="docker-overhead-client"}'
helper status >"$REPORT_DIR/status.txt" 2>&1 || true

REPORT_OK=1
if [[ "$E2E_FAULTS" != only ]]; then
stage run-batch
touch "$REPORT_DIR/.batch-start"
# Two windows per scenario, as users are told to measure (mean ± CI, Welch verdicts): on this
# 2-core VM the 2-stream scenario can stall the clients for seconds (README, "batch stalls"),
# and a stall across a window edge longer than the advisor's --max-edge-gap loses that window.
helper run-batch quick --repeat "$E2E_REPEAT" 2>&1 | tee "$REPORT_DIR/batch.log"
[[ ${PIPESTATUS[0]} == 0 ]] || die "run-batch quick --repeat $E2E_REPEAT failed"
MANIFEST=$(find "$ROOT/results" -maxdepth 1 -name '*.json' -newer "$REPORT_DIR/.batch-start" -printf '%T@ %p\n' |
    sort -rn | head -n 1 | cut -d' ' -f2-)
[[ -n "$MANIFEST" ]] || die "run-batch wrote no results manifest into $ROOT/results"
cp "$MANIFEST" "$REPORT_DIR/manifest.json"
log "manifest $MANIFEST"

stage advisor
helper report "$MANIFEST" 2>&1 | tee "$REPORT_DIR/report-table.txt"
[[ ${PIPESTATUS[0]} == 0 ]] || die "docker-compose_helper.sh report failed"
rel=${MANIFEST#"$ROOT/results/"}
WATTPUSH_UID=$(id -u) WATTPUSH_GID=$(id -g) \
    docker-compose -f "$ROOT/docker-compose.yml" --project-directory "$ROOT" --profile report \
    run --rm advisor report --prometheus-url http://prometheus:9090 \
    --results "/var/lib/wattpush/results/$rel" --allow-estimated --format json \
    --output /var/lib/wattpush/reports/e2e-report.json >"$REPORT_DIR/advisor-json.log" 2>&1 ||
    die "advisor --format json failed: $(tail -n 20 "$REPORT_DIR/advisor-json.log")"
cp "$ROOT/reports/e2e-report.json" "$REPORT_DIR/report.json"
REPORT_OK=1
python3 - "$REPORT_DIR/manifest.json" "$REPORT_DIR/report.json" <<'EOF' || REPORT_OK=0
import json, sys
manifest = json.load(open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
wanted = {w["scenario"] for w in manifest.get("windows", []) if w.get("scenario")}
assert wanted, f"no scenario names in the manifest: {sorted(manifest)}"
rows = {r.get("scenario"): r for r in report.get("scenarios", [])}
missing = sorted(wanted - set(rows))
assert not missing, f"report lacks scenarios {missing}; it has {sorted(rows)}"
energy = {n: rows[n].get("energy_j_mean") for n in wanted}
bad = {n: e for n, e in energy.items() if not (e or 0) > 0}
for n in sorted(wanted):
    r = rows[n]
    print(f"  {n}: energy_j_mean={energy[n]} windows ok {r.get('n_ok')}, missing {r.get('n_missing')}")
for w in report.get("warnings", []):
    if "interpolated" in w or "missing" in w:
        print(f"  warning: {w}")
assert not bad, f"scenarios without positive energy_j_mean: {bad} (see the report's warnings)"
EOF
faults batch || true # diagnostics only (faults-batch.json)
# (a failed check still lets the faults run: their results do not depend on the report)
fi

FAULTS_OK=1
if [[ "$E2E_FAULTS" != 0 ]]; then # 1, or "only" (skip the batch and report; for iterating)
    stage fault-prometheus-outage
    faults outage || FAULTS_OK=0
    stage fault-sigkill
    faults sigkill || FAULTS_OK=0
fi
((FAULTS_OK)) || die "a fault check failed (see [faults] above)"
((REPORT_OK)) || die "the advisor report does not name every scenario with positive energy (see above)"
stage ""
