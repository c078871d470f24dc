#!/usr/bin/env bats
# docker-compose_helper.sh: every command in DRY_RUN mode (no Docker engine needed), run in a
# sandbox copy of the deployment files so nothing in the checkout is written.

REPO="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"

setup() {
    SANDBOX="$BATS_TEST_TMPDIR/repo"
    mkdir -p "$SANDBOX/grafana" "$SANDBOX/bin"
    cp "$REPO/docker-compose_helper.sh" "$REPO/docker-compose.yml" \
        "$REPO/docker-compose.privileged.yml" "$REPO/.env" "$SANDBOX/"
    HELPER="$SANDBOX/docker-compose_helper.sh"
    # A docker stub: no engine, no compose v2 unless asked (STUB_* variables).
    cat >"$SANDBOX/bin/docker" <<'EOF'
#!/usr/bin/env bash
case "${1:-}" in
    compose) exit "${STUB_COMPOSE_V2_RC:-1}" ;;
    info)
        if [[ "${2:-}" == --format ]]; then echo "${STUB_RUNTIMES:-{\"runc\":{}}}"; fi
        exit "${STUB_INFO_RC:-1}" ;;
    version) echo 28.2.2 ;;
esac
EOF
    chmod +x "$SANDBOX/bin/docker"
    export WATTPUSH_DOCKER="$SANDBOX/bin/docker"
    export WATTPUSH_COMPOSE=docker-compose
    export DRY_RUN=1
    # AppArmor enabled, profile not loaded (tests load it by writing the profiles file).
    export APPARMOR_FS="$BATS_TEST_TMPDIR/apparmor"
    export APPARMOR_ENABLED_FILE="$BATS_TEST_TMPDIR/apparmor-enabled"
    mkdir -p "$APPARMOR_FS"
    echo "docker-default (enforce)" >"$APPARMOR_FS/profiles"
    echo Y >"$APPARMOR_ENABLED_FILE"
    # A fake host with one RAPL zone, root-only as on patched kernels.
    export POWERCAP_DIR="$BATS_TEST_TMPDIR/powercap"
    mkdir -p "$POWERCAP_DIR/intel-rapl/intel-rapl:0"
    echo 123 >"$POWERCAP_DIR/intel-rapl/intel-rapl:0/energy_uj"
    chmod 0400 "$POWERCAP_DIR/intel-rapl/intel-rapl:0/energy_uj"
    export WATTPUSH_INSTANCE=test-host
    # A host with every capability (the real one may lack some: see the CapBnd tests).
    export PROC_STATUS_FILE="$BATS_TEST_TMPDIR/status" CAP_LAST_CAP_FILE="$BATS_TEST_TMPDIR/cap_last_cap"
    printf 'Name:\tbash\nCapBnd:\t000001ffffffffff\n' >"$PROC_STATUS_FILE"
    echo 40 >"$CAP_LAST_CAP_FILE"
    unset PRIVILEGED WATTPUSH_EXTRA_COMPOSE_FILES COMPOSE_PROFILES NO_BUILD CPU_RAPL_SECURITY_OPT
}

load_profile() {
    echo "wattpush-cpu-rapl (enforce)" >>"$APPARMOR_FS/profiles"
}

@test "shellcheck: helper and Prometheus scripts are clean" {
    run shellcheck "$REPO/docker-compose_helper.sh" "$REPO/prometheus/entrypoint.sh" \
        "$REPO/prometheus/healthcheck.sh"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "help lists every command; an unknown command exits 2" {
    run "$HELPER" help
    [ "$status" -eq 0 ]
    for cmd in up down status logs config doctor run-batch report; do
        [[ "$output" == *"  $cmd"* ]] || { echo "missing $cmd"; false; }
    done
    run "$HELPER" explode
    [ "$status" -eq 2 ]
    [[ "$output" == *"usage:"* ]]
}

@test "up stops with the load command when the AppArmor profile is not loaded" {
    run "$HELPER" up
    [ "$status" -eq 3 ]
    [[ "$output" == *"AppArmor profile 'wattpush-cpu-rapl' is not loaded"* ]]
    [[ "$output" == *"sudo $SANDBOX/AppArmor/install.sh --rapl-group 10002"* ]]
    [[ "$output" == *"PRIVILEGED=true"* ]]
    [[ "$output" != *"up -d"* ]]
}

@test "up stops when AppArmor is disabled on the host, pointing at PRIVILEGED" {
    echo N >"$APPARMOR_ENABLED_FILE"
    run "$HELPER" up
    [ "$status" -eq 3 ]
    [[ "$output" == *"AppArmor is not enabled"* ]]
    [[ "$output" == *"PRIVILEGED=true"* ]]
}

@test "up with the profile loaded: builds base then images, starts confined" {
    load_profile
    run "$HELPER" up
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"+ export CPU_RAPL_SECURITY_OPT=apparmor=wattpush-cpu-rapl"* ]]
    [[ "$output" == *"would generate the Grafana admin password"* ]]
    [[ "$output" != *"docker-compose.privileged.yml"* ]]
    base_line=$(grep -n -- "--profile build build base-monitoring-client" <<<"$output" | cut -d: -f1)
    up_line=$(grep -n -- " up -d" <<<"$output" | cut -d: -f1)
    [ -n "$base_line" ] && [ -n "$up_line" ] && [ "$base_line" -lt "$up_line" ]
    [[ "$output" == *"+ docker-compose -f $SANDBOX/docker-compose.yml --project-directory $SANDBOX up -d"* ]]
    # Dry run writes nothing.
    [ ! -e "$SANDBOX/grafana/admin-password" ]
    [ ! -e "$SANDBOX/results" ]
}

@test "PRIVILEGED=true/True/1 selects the overlay and needs no AppArmor" {
    echo N >"$APPARMOR_ENABLED_FILE"
    for value in true True 1; do
        PRIVILEGED=$value run "$HELPER" up
        [ "$status" -eq 0 ] || { echo "$value: $output"; false; }
        [[ "$output" == *"-f $SANDBOX/docker-compose.yml -f $SANDBOX/docker-compose.privileged.yml"* ]]
        [[ "$output" == *"+ export CPU_RAPL_SECURITY_OPT=apparmor=unconfined"* ]]
    done
}

@test "PRIVILEGED=false and an invalid PRIVILEGED" {
    load_profile
    PRIVILEGED=false run "$HELPER" up
    [ "$status" -eq 0 ]
    [[ "$output" != *"privileged.yml"* ]]
    PRIVILEGED=sometimes run "$HELPER" up
    [ "$status" -eq 2 ]
    [[ "$output" == *"PRIVILEGED='sometimes' is not a boolean; fix: use true or false"* ]]
}

@test "NO_BUILD=1 up only starts" {
    load_profile
    NO_BUILD=1 run "$HELPER" up
    [ "$status" -eq 0 ]
    [[ "$output" != *" build"* ]]
    [[ "$output" == *" up -d"* ]]
}

@test "COMPOSE_PROFILES become --profile flags; alerts wires Prometheus to Alertmanager" {
    load_profile
    COMPOSE_PROFILES=nvidia,alerts run "$HELPER" up
    [ "$status" -eq 0 ]
    [[ "$output" == *"--profile nvidia --profile alerts up -d"* ]]
    [[ "$output" == *"+ export ALERTMANAGER_TARGETS=alertmanager:9093"* ]]
    COMPOSE_PROFILES=nvidia,gpus run "$HELPER" up
    [ "$status" -eq 2 ]
    [[ "$output" == *"COMPOSE_PROFILES names 'gpus'"* ]]
}

@test "down removes every profile's containers; --volumes also the data" {
    run "$HELPER" down
    [ "$status" -eq 0 ]
    [[ "$output" == *"--profile nvidia --profile rtmp --profile alerts --profile batch --profile report down --remove-orphans"* ]]
    [[ "$output" != *"--volumes"* ]]
    run "$HELPER" down --volumes
    [[ "$output" == *"down --remove-orphans --volumes"* ]]
}

@test "status shows the containers" {
    run "$HELPER" status
    [ "$status" -eq 0 ]
    [[ "$output" == *"--project-directory $SANDBOX ps"* ]]
}

@test "logs: tail by default, -f follows, services pass through" {
    run "$HELPER" logs
    [ "$status" -eq 0 ]
    [[ "$output" == *" logs --tail 200"* ]]
    LOG_TAIL=50 run "$HELPER" logs -f prometheus cpu-rapl-client
    [[ "$output" == *" logs --tail 50 --follow prometheus cpu-rapl-client"* ]]
}

@test "config prints the compose config command (dry run)" {
    run "$HELPER" config
    [ "$status" -eq 0 ]
    [[ "$output" == *"--project-directory $SANDBOX config"* ]]
}

@test "run-batch FILE mounts the file's directory read-only" {
    mkdir -p "$BATS_TEST_TMPDIR/batches"
    echo '{"scenarios": []}' >"$BATS_TEST_TMPDIR/batches/mine.json"
    run "$HELPER" run-batch "$BATS_TEST_TMPDIR/batches/mine.json" --fail-fast
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"--profile batch run --rm -v $BATS_TEST_TMPDIR/batches:/batch:ro ffmpeg-runner batch --file /batch/mine.json --fail-fast"* ]]
}

@test "run-batch NAME uses a shipped batch; no argument uses DEFAULT_BATCH; a missing file is an error" {
    run "$HELPER" run-batch stress
    [[ "$output" == *"run --rm ffmpeg-runner batch --file stress"* ]]
    run "$HELPER" run-batch
    [[ "$output" == *"run --rm ffmpeg-runner batch --file quick"* ]]
    run "$HELPER" run-batch ./nope.json
    [ "$status" -eq 2 ]
    [[ "$output" == *"batch file './nope.json' does not exist; fix:"* ]]
}

@test "report without results looks back REPORT_SINCE and prints the HTML path" {
    run "$HELPER" report
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"run --rm advisor report --prometheus-url http://prometheus:9090 --since 2h --format table"* ]]
    [[ "$output" == *"--format html --output /var/lib/wattpush/reports/report-"*".html"* ]]
    [[ "$output" == *"HTML report: $SANDBOX/reports/report-"*".html"* ]]
}

@test "report uses the newest manifest, or the one given; estimated power on request" {
    mkdir -p "$SANDBOX/results"
    echo '{}' >"$SANDBOX/results/old.json"
    touch -d '2 hours ago' "$SANDBOX/results/old.json"
    echo '{}' >"$SANDBOX/results/new.json"
    REPORT_ALLOW_ESTIMATED=true run "$HELPER" report
    [[ "$output" == *"--results /var/lib/wattpush/results/new.json --allow-estimated --format table"* ]]
    run "$HELPER" report "$SANDBOX/results/old.json"
    [[ "$output" == *"--results /var/lib/wattpush/results/old.json --format html"* ]]
    echo '{}' >"$BATS_TEST_TMPDIR/elsewhere.json"
    run "$HELPER" report "$BATS_TEST_TMPDIR/elsewhere.json"
    [ "$status" -eq 2 ]
    [[ "$output" == *"is not under $SANDBOX/results"* ]]
}

@test "build builds the base image first, then the rest" {
    run "$HELPER" build
    [ "$status" -eq 0 ]
    [ "$(grep -c ' build' <<<"$output")" -eq 2 ]
    [[ "$(grep ' build' <<<"$output" | head -n 1)" == *"--profile build build base-monitoring-client" ]]
}

@test "build makes the wheelhouse first when it is missing or older than a source file" {
    run "$HELPER" build
    [ "$status" -eq 0 ]
    make_line=$(grep -n -- "+ make -C $SANDBOX wheels" <<<"$output" | cut -d: -f1)
    base_line=$(grep -n -- "--profile build build base-monitoring-client" <<<"$output" | cut -d: -f1)
    [ -n "$make_line" ] && [ -n "$base_line" ] && [ "$make_line" -lt "$base_line" ] || { echo "$output"; false; }
    mkdir -p "$SANDBOX/pkg" "$SANDBOX/build/wheels/core" "$SANDBOX/build/wheels/extras"
    touch -d '2 hours ago' "$SANDBOX/pkg/mod.py"
    touch "$SANDBOX/build/wheels/core/wattpush-0.1.0-py3-none-any.whl"
    run "$HELPER" build
    [ "$status" -eq 0 ]
    [[ "$output" != *"make -C"* ]] || { echo "$output"; false; }
    touch "$SANDBOX/pkg/mod.py" # edited after the wheels were made
    run "$HELPER" build
    [[ "$output" == *"older than the sources"*"+ make -C $SANDBOX wheels"* ]] || { echo "$output"; false; }
}

@test "compose v2 is preferred when 'docker compose' works" {
    unset WATTPUSH_COMPOSE
    load_profile
    STUB_COMPOSE_V2_RC=0 run "$HELPER" status
    [[ "$output" == *"+ $SANDBOX/bin/docker compose -f"* ]]
    STUB_COMPOSE_V2_RC=1 run "$HELPER" status
    [[ "$output" == *"+ docker-compose -f"* ]]
}

@test "invalid .env values are all reported with their fixes, exit 2" {
    sed -i 's/^CPU_RAPL_SAMPLE_INTERVAL_S=.*/CPU_RAPL_SAMPLE_INTERVAL_S=fast/; s/^GRAFANA_PORT=.*/GRAFANA_PORT=70000/; s/^CPU_RAPL_SPOOL_MAX_BYTES=.*/CPU_RAPL_SPOOL_MAX_BYTES=lots/' "$SANDBOX/.env"
    run "$HELPER" status
    [ "$status" -eq 2 ]
    [[ "$output" == *"CPU_RAPL_SAMPLE_INTERVAL_S='fast' is not a positive number; fix: e.g. CPU_RAPL_SAMPLE_INTERVAL_S=0.1"* ]]
    [[ "$output" == *"GRAFANA_PORT='70000' is not a port"* ]]
    [[ "$output" == *"CPU_RAPL_SPOOL_MAX_BYTES='lots' is not a size"* ]]
}

@test "shell environment wins over .env; a malformed line and CPU_RAPL_SECURITY_OPT are refused" {
    load_profile
    CPU_RAPL_APPARMOR_PROFILE=custom-profile run "$HELPER" status
    [ "$status" -eq 0 ]
    [[ "$output" == *"CPU_RAPL_SECURITY_OPT=apparmor=custom-profile"* ]]
    echo "CPU_RAPL_SECURITY_OPT=apparmor=unconfined" >>"$SANDBOX/.env"
    run "$HELPER" status
    [ "$status" -eq 2 ]
    [[ "$output" == *"sets CPU_RAPL_SECURITY_OPT; fix: delete that line"* ]]
    sed -i '$d' "$SANDBOX/.env"
    echo "BROKEN LINE" >>"$SANDBOX/.env"
    run "$HELPER" status
    [ "$status" -eq 2 ]
    [[ "$output" == *"is not KEY=value: 'BROKEN LINE'"* ]]
}

@test "doctor reports each failure with its fix and exits 1" {
    STUB_INFO_RC=1 COMPOSE_PROFILES=nvidia DOCKER_SOCKET=/nonexistent.sock run "$HELPER" doctor
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL  Docker engine not reachable"* ]]
    [[ "$output" == *"fix: start it (sudo systemctl start docker)"* ]]
    [[ "$output" == *"ok    compose v1 1.29"* ]]
    [[ "$output" == *"warn  RAPL: 1 of 1 energy counters are not readable by group 10002"* ]]
    [[ "$output" == *"FAIL  AppArmor profile 'wattpush-cpu-rapl' not loaded"* ]]
    [[ "$output" == *"fix: sudo $SANDBOX/AppArmor/install.sh --rapl-group 10002"* ]]
    [[ "$output" == *"FAIL  profile nvidia is on but Docker has no NVIDIA runtime"* ]]
    [[ "$output" == *"nvidia-ctk runtime configure --runtime=docker"* ]]
    [[ "$output" == *"FAIL  no Docker socket at /nonexistent.sock"* ]]
    [[ "$output" == *"doctor: problems found"* ]]
}

@test "doctor passes on a healthy host, and flags bad .env values and busy ports" {
    load_profile
    # What `AppArmor/install.sh --rapl-group` does on the host: group-readable energy_uj.
    chgrp 10002 "$POWERCAP_DIR/intel-rapl/intel-rapl:0/energy_uj" 2>/dev/null ||
        RAPL_GID=$(id -g)
    export RAPL_GID=${RAPL_GID:-10002}
    chmod 0440 "$POWERCAP_DIR/intel-rapl/intel-rapl:0/energy_uj"
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$BATS_TEST_TMPDIR/docker.sock"
    # A port that is in use: a listener started here, stopped by PID.
    busy=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$busy" &
    listener=$!
    sleep 0.5
    STUB_INFO_RC=0 DOCKER_SOCKET="$BATS_TEST_TMPDIR/docker.sock" PROMETHEUS_PORT=1 GRAFANA_PORT=2 \
        run "$HELPER" doctor
    [ "$status" -eq 0 ] || { kill "$listener"; echo "$output"; false; }
    [[ "$output" == *"ok    Docker engine reachable"* ]]
    [[ "$output" == *"ok    RAPL: 1 energy counters readable by the container"* ]]
    [[ "$output" == *"ok    AppArmor profile 'wattpush-cpu-rapl' loaded"* ]]
    [[ "$output" == *"ok    .env values valid"* ]]
    [[ "$output" == *"doctor: all checks passed"* ]]
    STUB_INFO_RC=0 DOCKER_SOCKET="$BATS_TEST_TMPDIR/docker.sock" PROMETHEUS_PORT="$busy" \
        GRAFANA_PORT=2 RAPL_BACKEND=rapl run "$HELPER" doctor
    kill "$listener"
    [ "$status" -eq 1 ]
    [[ "$output" == *"warn  port $busy (PROMETHEUS_PORT) is in use"* ]]
    [[ "$output" == *"FAIL  RAPL_BACKEND='rapl' is unknown"* ]]
    [[ "$output" == *"fix: sysfs, pyjoules or estimated"* ]]
}

@test "doctor in privileged mode does not need AppArmor; no RAPL is a warning with a fix" {
    echo N >"$APPARMOR_ENABLED_FILE"
    PRIVILEGED=true POWERCAP_DIR="$BATS_TEST_TMPDIR/none" run "$HELPER" doctor
    [[ "$output" == *"ok    PRIVILEGED=true: cpu-rapl-client runs privileged"* ]]
    [[ "$output" == *"warn  no RAPL energy counters under $BATS_TEST_TMPDIR/none"* ]]
    [[ "$output" == *"fix: on bare metal load the driver"* ]]
}

@test "init generates the Grafana password once, mode 600, printed once" {
    DRY_RUN=0 run "$HELPER" init
    [ "$status" -eq 0 ]
    file="$SANDBOX/grafana/admin-password"
    [ "$(stat -c %a "$file")" = 600 ]
    password=$(cat "$file")
    [ "${#password}" -eq 24 ]
    [[ "$output" == *"$password"* ]]
    [ -d "$SANDBOX/results" ] && [ -d "$SANDBOX/reports" ]
    DRY_RUN=0 run "$HELPER" init
    [ "$status" -eq 0 ]
    [[ "$output" != *"$password"* ]]
    [ "$(cat "$file")" = "$password" ]
}

@test "a missing powercap tree is replaced by an empty directory (estimate, not a failed mount)" {
    load_profile
    POWERCAP_DIR=/nonexistent/powercap run "$HELPER" status
    [ "$status" -eq 0 ]
    [[ "$output" == *"+ export POWERCAP_DIR=$SANDBOX/.cache/empty-powercap"* ]]
    run "$HELPER" status
    [[ "$output" == *"+ export POWERCAP_DIR=$POWERCAP_DIR"* ]]
}

@test "doctor and up in privileged mode name the capabilities this host's bounding set lacks" {
    echo N >"$APPARMOR_ENABLED_FILE"
    printf 'CapBnd:\t000001fffeffffff\n' >"$PROC_STATUS_FILE" # no CAP_SYS_RESOURCE (24)
    PRIVILEGED=true run "$HELPER" doctor
    [[ "$output" == *"warn  PRIVILEGED=true, but this host's capability bounding set lacks CAP_SYS_RESOURCE"* ]]
    [[ "$output" == *"fix: PRIVILEGED=false with the AppArmor profile"* ]]
    PRIVILEGED=true run "$HELPER" up
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: this host's capability bounding set lacks CAP_SYS_RESOURCE"* ]]
}

# A compose stub that answers `config` with the real docker-compose and records the rest, and
# a docker stub that knows the images in STUB_IMAGES and cannot reach a registry.
live_stubs() {
    cat >"$SANDBOX/bin/compose" <<'EOF'
#!/usr/bin/env bash
for a in "$@"; do [[ "$a" == config ]] && exec docker-compose "$@"; done
echo "COMPOSE $* ALERTMANAGER_TARGETS=${ALERTMANAGER_TARGETS:-}" >>"$STUB_LOG"
EOF
    cat >"$SANDBOX/bin/docker" <<'EOF'
#!/usr/bin/env bash
case "$1 ${2:-}" in
    "image inspect") [[ " $STUB_IMAGES " == *" $3 "* ]] ;;
    "pull "*) echo "Error response from daemon: Get \"https://registry.example/v2/\": dial tcp: lookup registry.example: no such host" >&2; exit 1 ;;
    *) exit 1 ;;
esac
EOF
    chmod +x "$SANDBOX/bin/compose" "$SANDBOX/bin/docker"
    export WATTPUSH_COMPOSE="$SANDBOX/bin/compose" STUB_LOG="$BATS_TEST_TMPDIR/compose.log" DRY_RUN=0 NO_BUILD=1
    export STUB_IMAGES="wattpush/prometheus:latest wattpush/cpu-rapl-client:latest wattpush/docker-overhead-client:latest"
    : >"$STUB_LOG"
    load_profile
}

@test "up leaves out Grafana when its image is missing and cannot be pulled, and says so" {
    live_stubs
    run "$HELPER" up
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"grafana is not started: its image grafana/grafana-oss:10.4.2 is not on this host and could not be pulled (Error response from daemon:"*"no such host)"* ]]
    [[ "$output" == *"set GRAFANA_IMAGE in .env to an image you have"* ]]
    [[ "$output" == *"wattpush is up: Grafana not started (see above), Prometheus http://127.0.0.1:9090"* ]]
    [[ "$output" == *"left out (image unavailable): grafana"* ]]
    run cat "$STUB_LOG"
    [[ "$output" == *" up -d cpu-rapl-client docker-overhead-client prometheus ALERTMANAGER_TARGETS="* ]]
    [[ "$output" != *grafana* ]]
}

@test "up starts compose's own set when every image is there; Alertmanager left out clears its target" {
    live_stubs
    STUB_IMAGES="$STUB_IMAGES grafana/grafana-oss:10.4.2" run "$HELPER" up
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"wattpush is up: Grafana http://127.0.0.1:3000"* ]]
    [[ "$(cat "$STUB_LOG")" == *"--project-directory $SANDBOX up -d ALERTMANAGER_TARGETS="* ]]
    : >"$STUB_LOG"
    STUB_IMAGES="$STUB_IMAGES grafana/grafana-oss:10.4.2" COMPOSE_PROFILES=alerts run "$HELPER" up
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"alertmanager is not started: its image prom/alertmanager:v0.27.0"*"set ALERTMANAGER_IMAGE in .env"* ]]
    run cat "$STUB_LOG"
    [[ "$output" == *"--profile alerts up -d cpu-rapl-client docker-overhead-client grafana prometheus ALERTMANAGER_TARGETS=" ]]
}

@test "NO_BUILD=1 up with a project image not built stops with the build command" {
    live_stubs
    STUB_IMAGES="wattpush/prometheus:latest" run "$HELPER" up
    [ "$status" -eq 1 ]
    [[ "$output" == *"image wattpush/cpu-rapl-client:latest of cpu-rapl-client is not built; fix: run '$HELPER build' first"* ]]
    [ ! -s "$STUB_LOG" ]
}

@test "WATTPUSH_EXTRA_COMPOSE_FILES come after the project's files; a missing one is an error" {
    load_profile
    printf 'services:\n  grafana:\n    user: "0"\n' >"$BATS_TEST_TMPDIR/mine.yml"
    PRIVILEGED=true WATTPUSH_EXTRA_COMPOSE_FILES="$BATS_TEST_TMPDIR/mine.yml" run "$HELPER" status
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"-f $SANDBOX/docker-compose.privileged.yml -f $BATS_TEST_TMPDIR/mine.yml --project-directory"* ]]
    WATTPUSH_EXTRA_COMPOSE_FILES="$BATS_TEST_TMPDIR/mine.yml:/nope.yml" run "$HELPER" status
    [ "$status" -eq 2 ]
    [[ "$output" == *"WATTPUSH_EXTRA_COMPOSE_FILES names '/nope.yml', which is not a file; fix:"* ]]
}
