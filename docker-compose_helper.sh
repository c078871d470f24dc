#!/usr/bin/env bash
# Run the wattpush stack with docker compose v2 or docker-compose 1.29.
#
#   ./docker-compose_helper.sh up | down [--volumes] | status | logs [-f] [SERVICE...] | config
#                              doctor | run-batch [FILE|NAME] [ARGS...] | report [MANIFEST]
#                              build | init | help
#
# Reads .env (variables already exported win, as with compose), fills the host-specific values
# (uid/gid, docker group, instance name, powercap mounts), and adds
# docker-compose.privileged.yml when PRIVILEGED is true/True/1; otherwise the AppArmor profile
# must be loaded. DRY_RUN=1 prints the docker/compose commands instead of running them.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ENV_FILE=${WATTPUSH_ENV_FILE:-$HERE/.env}
DRY_RUN=${DRY_RUN:-0}
DOCKER=${WATTPUSH_DOCKER:-docker}
APPARMOR_FS=${APPARMOR_FS:-/sys/kernel/security/apparmor}
APPARMOR_ENABLED_FILE=${APPARMOR_ENABLED_FILE:-/sys/module/apparmor/parameters/enabled}
PROC_STATUS_FILE=${PROC_STATUS_FILE:-/proc/self/status}
CAP_LAST_CAP_FILE=${CAP_LAST_CAP_FILE:-/proc/sys/kernel/cap_last_cap}
KNOWN_PROFILES="nvidia rtmp alerts batch report"
COMPOSE=()

die() { # MESSAGE [EXIT]
    printf 'docker-compose_helper: %s\n' "$1" >&2
    exit "${2:-1}"
}

say() { printf '%s\n' "$*"; }

is_true() {
    case "${1:-}" in
        true | True | TRUE | 1 | yes | Yes | YES) return 0 ;;
        *) return 1 ;;
    esac
}

is_bool() {
    case "${1:-}" in
        true | True | TRUE | 1 | yes | Yes | YES | false | False | FALSE | 0 | no | No | NO | "") return 0 ;;
        *) return 1 ;;
    esac
}

# Print (DRY_RUN=1) or run a command. Printed with %q quoting so it can be pasted.
run() {
    if is_true "$DRY_RUN"; then
        local out="+" arg
        for arg in "$@"; do out+=" $(printf '%q' "$arg")"; done
        printf '%s\n' "$out"
    else
        "$@"
    fi
}

# ------------------------------------------------------------------ .env

# Export KEY=VALUE lines of .env whose KEY is not already in the environment.
load_env() {
    [[ -f "$ENV_FILE" ]] || die "$ENV_FILE is missing; fix: restore it with 'git checkout -- .env'"
    local line key value n=0
    while IFS= read -r line || [[ -n "$line" ]]; do
        n=$((n + 1))
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
            die "$ENV_FILE line $n is not KEY=value: '$line'; fix: write it as NAME=value without spaces around =" 2
        fi
        key=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        if [[ "$key" == "CPU_RAPL_SECURITY_OPT" ]]; then
            die "$ENV_FILE line $n sets CPU_RAPL_SECURITY_OPT; fix: delete that line and use PRIVILEGED=true|false (the helper derives it)" 2
        fi
        if [[ -z "${!key+set}" ]]; then
            export "$key=$value"
        fi
    done <"$ENV_FILE"
}

# Every invalid value, one line each with its fix; empty output = all good.
env_problems() {
    local name value
    for name in CPU_RAPL_SAMPLE_INTERVAL_S CPU_RAPL_PUSH_INTERVAL_S GPU_NVML_SAMPLE_INTERVAL_S \
        GPU_NVML_PUSH_INTERVAL_S DOCKER_OVERHEAD_SAMPLE_INTERVAL_S DOCKER_OVERHEAD_PUSH_INTERVAL_S \
        FFMPEG_RUNNER_SAMPLE_INTERVAL_S FFMPEG_RUNNER_PUSH_INTERVAL_S ALERT_POWER_WATTS \
        ALERT_GPU_TEMPERATURE_CELSIUS; do
        value=${!name:-}
        if [[ ! "$value" =~ ^[0-9]+(\.[0-9]+)?$ ]] || [[ "$value" =~ ^0+(\.0+)?$ ]]; then
            say "$name='$value' is not a positive number; fix: e.g. $name=$(default_of "$name")"
        fi
    done
    for name in CPU_RAPL_SPOOL_MAX_BYTES GPU_NVML_SPOOL_MAX_BYTES DOCKER_OVERHEAD_SPOOL_MAX_BYTES \
        FFMPEG_RUNNER_SPOOL_MAX_BYTES; do
        value=${!name:-}
        if [[ ! "$value" =~ ^[0-9]+(\.[0-9]+)?([KMGT]i?B)?$ ]]; then
            say "$name='$value' is not a size; fix: use bytes or e.g. 256MiB, 1GB"
        fi
    done
    for name in PROMETHEUS_PORT GRAFANA_PORT ALERTMANAGER_PORT RTMP_PORT; do
        value=${!name:-}
        if [[ ! "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
            say "$name='$value' is not a port; fix: use a number between 1 and 65535"
        fi
    done
    local ports="${PROMETHEUS_PORT:-} ${GRAFANA_PORT:-} ${ALERTMANAGER_PORT:-} ${RTMP_PORT:-}"
    if [[ $(tr ' ' '\n' <<<"$ports" | sort | uniq -d) ]]; then
        say "ports '$ports' repeat a number; fix: give PROMETHEUS_PORT, GRAFANA_PORT, ALERTMANAGER_PORT and RTMP_PORT distinct values"
    fi
    if [[ ! "${QUEUE_CAPACITY:-}" =~ ^[1-9][0-9]*$ ]]; then
        say "QUEUE_CAPACITY='${QUEUE_CAPACITY:-}' is not a whole number >= 1; fix: e.g. QUEUE_CAPACITY=100000"
    fi
    for name in PROMETHEUS_RETENTION_TIME PROMETHEUS_SCRAPE_INTERVAL PROMETHEUS_EVALUATION_INTERVAL \
        PROMETHEUS_OUT_OF_ORDER_WINDOW REPORT_SINCE; do
        value=${!name:-}
        if [[ ! "$value" =~ ^([0-9]+(ms|s|m|h|d|w|y))+$ ]]; then
            say "$name='$value' is not a duration; fix: use e.g. 15s, 30m, 2h, 15d"
        fi
    done
    if [[ ! "${PROMETHEUS_RETENTION_SIZE:-}" =~ ^[0-9]+(B|KB|MB|GB|TB|PB)?$ ]]; then
        say "PROMETHEUS_RETENTION_SIZE='${PROMETHEUS_RETENTION_SIZE:-}' is not a size; fix: 0 (no limit) or e.g. 20GB"
    fi
    for name in PRIVILEGED ESTIMATE_FALLBACK GPU_OPTIONAL REPORT_ALLOW_ESTIMATED; do
        if ! is_bool "${!name:-}"; then
            say "$name='${!name:-}' is not a boolean; fix: use true or false"
        fi
    done
    for name in WATTPUSH_UID WATTPUSH_GID DOCKER_GID RAPL_GID; do
        if [[ -n "${!name:-}" && ! "${!name}" =~ ^[0-9]+$ ]]; then
            say "$name='${!name}' is not a numeric id; fix: leave it empty (detected) or use a number"
        fi
    done
    if [[ ! "${BIND_ADDRESS:-}" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; then
        say "BIND_ADDRESS='${BIND_ADDRESS:-}' is not an IPv4 address; fix: 127.0.0.1 (local only) or 0.0.0.0"
    fi
    case "${RAPL_BACKEND:-}" in sysfs | pyjoules | estimated) ;; *)
        say "RAPL_BACKEND='${RAPL_BACKEND:-}' is unknown; fix: sysfs, pyjoules or estimated" ;;
    esac
    case "${LOG_LEVEL:-}" in debug | info | warning | error | critical | DEBUG | INFO | WARNING | ERROR | CRITICAL) ;; *)
        say "LOG_LEVEL='${LOG_LEVEL:-}' is unknown; fix: debug, info, warning, error or critical" ;;
    esac
    case "${LOG_FORMAT:-}" in text | json) ;; *)
        say "LOG_FORMAT='${LOG_FORMAT:-}' is unknown; fix: text or json" ;;
    esac
    local profile
    for profile in $(profiles); do
        if [[ " $KNOWN_PROFILES " != *" $profile "* ]]; then
            say "COMPOSE_PROFILES names '$profile'; fix: use only nvidia, rtmp, alerts (comma separated)"
        fi
    done
    if [[ -n "${CPU_RAPL_APPARMOR_PROFILE:-}" && ! "${CPU_RAPL_APPARMOR_PROFILE}" =~ ^[A-Za-z0-9_.-]+$ ]]; then
        say "CPU_RAPL_APPARMOR_PROFILE='${CPU_RAPL_APPARMOR_PROFILE}' is not a profile name; fix: wattpush-cpu-rapl"
    fi
    local extra
    while IFS= read -r extra; do
        if [[ ! -f "$extra" ]]; then
            say "WATTPUSH_EXTRA_COMPOSE_FILES names '$extra', which is not a file; fix: give existing compose files, colon separated (or leave it empty)"
        fi
    done < <(extra_compose_files)
    if grep -Eq '^[[:space:]]*(GRAFANA_ADMIN_PASSWORD|GF_SECURITY_ADMIN_PASSWORD)=' "$ENV_FILE"; then
        say "$ENV_FILE holds a Grafana password; fix: delete it there, the helper generates grafana/admin-password"
    fi
}

default_of() {
    case "$1" in
        *_SAMPLE_INTERVAL_S) echo 0.1 ;;
        *_PUSH_INTERVAL_S) echo 4 ;;
        ALERT_POWER_WATTS) echo 300 ;;
        ALERT_GPU_TEMPERATURE_CELSIUS) echo 85 ;;
        *) echo 1 ;;
    esac
}

validate_env() {
    local problems
    problems=$(env_problems)
    if [[ -n "$problems" ]]; then
        printf 'docker-compose_helper: invalid settings in %s:\n' "$ENV_FILE" >&2
        printf '  %s\n' "${problems//$'\n'/$'\n  '}" >&2
        exit 2
    fi
}

profiles() { tr ',' ' ' <<<"${COMPOSE_PROFILES:-}"; }

profile_enabled() { [[ " $(profiles) " == *" $1 "* ]]; }

# ------------------------------------------------------------------ host facts

# Values compose needs that depend on this host; exported so compose interpolates them.
prepare_env() {
    : "${WATTPUSH_UID:=$(id -u)}"
    : "${WATTPUSH_GID:=$(id -g)}"
    : "${WATTPUSH_INSTANCE:=$(hostname)}"
    local socket=${DOCKER_SOCKET:-/var/run/docker.sock}
    if [[ -z "${DOCKER_GID:-}" ]]; then
        if [[ -S "$socket" ]]; then
            DOCKER_GID=$(stat -c %g "$socket")
        else
            DOCKER_GID=0
        fi
    fi
    if is_true "${PRIVILEGED:-false}"; then
        export CPU_RAPL_SECURITY_OPT=apparmor=unconfined
    else
        export CPU_RAPL_SECURITY_OPT=apparmor=${CPU_RAPL_APPARMOR_PROFILE:-wattpush-cpu-rapl}
    fi
    # A missing powercap tree (VM, no driver) would fail the bind mount: mount an empty
    # directory instead and let the client fall back to its estimate.
    local empty="$HERE/.cache/empty-powercap"
    POWERCAP_SOURCE=${POWERCAP_DIR:-/sys/devices/virtual/powercap}
    if [[ ! -d "${POWERCAP_DIR:=/sys/devices/virtual/powercap}" ]]; then
        POWERCAP_DIR=$empty
        is_true "$DRY_RUN" || mkdir -p "$POWERCAP_DIR"
    fi
    if profile_enabled alerts && [[ -z "${ALERTMANAGER_TARGETS:-}" ]]; then
        ALERTMANAGER_TARGETS=alertmanager:9093
    fi
    local name
    for name in WATTPUSH_UID WATTPUSH_GID WATTPUSH_INSTANCE DOCKER_GID CPU_RAPL_SECURITY_OPT \
        POWERCAP_DIR ALERTMANAGER_TARGETS; do
        export "${name?}"
        if is_true "$DRY_RUN"; then
            printf '+ export %s=%q\n' "$name" "${!name}"
        fi
    done
}

# "v2" or "v1"; sets COMPOSE to the command words. WATTPUSH_COMPOSE overrides detection.
detect_compose() {
    if [[ -n "${WATTPUSH_COMPOSE:-}" ]]; then
        read -r -a COMPOSE <<<"$WATTPUSH_COMPOSE"
    elif "$DOCKER" compose version >/dev/null 2>&1; then
        COMPOSE=("$DOCKER" compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        die "neither 'docker compose' (v2) nor 'docker-compose' (>= 1.28) is installed; fix: install the docker-compose-plugin package (or docker-compose 1.29)"
    fi
}

compose_flavour() { # prints "v2 <version>" or "v1 <version>"
    local version
    if [[ "${COMPOSE[*]}" == *" compose" ]]; then
        version=$("${COMPOSE[@]}" version --short 2>/dev/null || true)
        echo "v2 ${version:-unknown}"
    else
        version=$("${COMPOSE[@]}" version --short 2>/dev/null || true)
        echo "v1 ${version:-unknown}"
    fi
}

# WATTPUSH_EXTRA_COMPOSE_FILES (colon separated), one per line.
extra_compose_files() {
    local list=() f
    IFS=: read -r -a list <<<"${WATTPUSH_EXTRA_COMPOSE_FILES:-}"
    for f in "${list[@]}"; do
        if [[ -n "$f" ]]; then printf '%s\n' "$f"; fi
    done
}

compose_files() {
    local files=(-f "$HERE/docker-compose.yml") extra
    if is_true "${PRIVILEGED:-false}"; then
        files+=(-f "$HERE/docker-compose.privileged.yml")
    fi
    # Your own overrides come last: they win.
    while IFS= read -r extra; do files+=(-f "$extra"); done < <(extra_compose_files)
    printf '%s\n' "${files[@]}"
}

# compose with this project's files and the profiles from COMPOSE_PROFILES (+ extra ones).
compose() { # [--profile P]... ARGS...
    local args=() files profile
    mapfile -t files < <(compose_files)
    args+=("${files[@]}" --project-directory "$HERE")
    for profile in $(profiles); do args+=(--profile "$profile"); done
    run "${COMPOSE[@]}" "${args[@]}" "$@"
}

apparmor_profile_loaded() { # 0 loaded, 1 not loaded, 2 cannot tell
    local name=${CPU_RAPL_APPARMOR_PROFILE:-wattpush-cpu-rapl} f
    if [[ -r "$APPARMOR_FS/profiles" ]]; then
        grep -q "^$name (" "$APPARMOR_FS/profiles" && return 0
        return 1
    fi
    if [[ -d "$APPARMOR_FS/policy/profiles" ]]; then
        for f in "$APPARMOR_FS"/policy/profiles/*/name; do
            [[ -r "$f" ]] || return 2
            [[ "$(cat "$f")" == "$name" ]] && return 0
        done
        return 1
    fi
    return 2
}

CAP_NAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)

# Capabilities the kernel knows but this host's bounding set lacks (names, space separated;
# empty when complete or unknown). A privileged container asks for all of them, and runc then
# fails with "unable to apply caps" (seen in sandboxes and some nested containers).
missing_capabilities() {
    local bnd last i out=()
    bnd=$(awk '/^CapBnd:/ {print $2}' "$PROC_STATUS_FILE" 2>/dev/null || true)
    last=$(cat "$CAP_LAST_CAP_FILE" 2>/dev/null || true)
    [[ "$bnd" =~ ^[0-9a-fA-F]{1,16}$ && "$last" =~ ^[0-9]+$ ]] || return 0
    for ((i = 0; i <= last && i < 63; i++)); do
        if ((((16#$bnd >> i) & 1) == 0)); then out+=("CAP_${CAP_NAMES[$i]:-$i}"); fi
    done
    echo "${out[*]}"
}

apparmor_enabled() { [[ -r "$APPARMOR_ENABLED_FILE" && "$(cat "$APPARMOR_ENABLED_FILE")" == Y* ]]; }

require_confinement() {
    is_true "${PRIVILEGED:-false}" && return 0
    local name=${CPU_RAPL_APPARMOR_PROFILE:-wattpush-cpu-rapl} state=0
    if ! apparmor_enabled; then
        die "AppArmor is not enabled on this host, so cpu-rapl-client cannot run under the '$name' profile.
  fix: set PRIVILEGED=true in .env (or run: PRIVILEGED=true $0 up)" 3
    fi
    apparmor_profile_loaded || state=$?
    case $state in
        0) return 0 ;;
        1) die "the AppArmor profile '$name' is not loaded; cpu-rapl-client would not start.
  fix: sudo $HERE/AppArmor/install.sh --rapl-group ${RAPL_GID:-10002}
  (or run privileged instead: PRIVILEGED=true in .env)" 3 ;;
        *) die "cannot read $APPARMOR_FS to see whether the AppArmor profile '$name' is loaded.
  fix: run this helper with sudo, or load it anyway: sudo $HERE/AppArmor/install.sh --rapl-group ${RAPL_GID:-10002}
  (or run privileged instead: PRIVILEGED=true in .env)" 3 ;;
    esac
}

# ------------------------------------------------------------------ files the stack needs

grafana_password() {
    local file=$HERE/grafana/admin-password
    if [[ -s "$file" ]]; then
        return 0
    fi
    if is_true "$DRY_RUN"; then
        say "# would generate the Grafana admin password into $file (mode 600)"
        return 0
    fi
    local password
    password=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
    (umask 077 && printf '%s' "$password" >"$file.tmp" && mv "$file.tmp" "$file")
    say "Grafana admin password (shown once; kept in grafana/admin-password, user ${GRAFANA_ADMIN_USER:-admin}):"
    say "  $password"
}

init_files() {
    grafana_password
    if ! is_true "$DRY_RUN"; then
        mkdir -p "$HERE/results" "$HERE/reports"
    fi
}

# ------------------------------------------------------------------ commands

# The images install wattpush from the host-built wheelhouse (build/wheels, `make wheels`): it is
# made here when it is missing or older than a source file, so no image holds stale code.
wheels_current() {
    local wheel
    wheel=$(compgen -G "$HERE/build/wheels/core/wattpush-*.whl" | head -n 1) || return 1
    [[ -d "$HERE/build/wheels/extras" ]] || return 1
    [[ -z "$(find "$HERE" \( -name .git -o -name .venv -o -name build -o -name .cache \) -prune \
        -o \( -name '*.py' -o -name pyproject.toml \) -newer "$wheel" -print -quit)" ]]
}

cmd_build() {
    if ! wheels_current; then
        say "the wheelhouse (build/wheels) is missing or older than the sources: making it"
        is_true "$DRY_RUN" || command -v make >/dev/null ||
            die "make not found; fix: apt-get install make, then run 'make wheels' in $HERE"
        run make -C "$HERE" wheels
    fi
    compose --profile build build base-monitoring-client
    compose build
}

# "NAME IMAGE BUILT PROFILES" for every service of the merged configuration (BUILT 1 when it
# has a build section; PROFILES comma separated or "-"). Parses `compose config`, whose output
# both compose flavours print as block YAML with services at two spaces.
service_table() {
    local files=()
    mapfile -t files < <(compose_files)
    "${COMPOSE[@]}" "${files[@]}" --project-directory "$HERE" config | awk '
        function flush() { if (name != "") print name, image, built, (prof == "" ? "-" : prof) }
        /^services:/ { in_services = 1; next }
        /^[^ ]/ { in_services = 0 }
        !in_services { next }
        /^  [^ -][^ ]*:$/ { flush(); name = substr($0, 3, length($0) - 3); image = "-"; built = 0; prof = ""; key = ""; next }
        /^    [a-z_]+:/ {
            key = $1; sub(/:$/, "", key)
            if (key == "image") { image = $2; gsub(/["\047]/, "", image) }
            if (key == "build") built = 1
            next
        }
        /^ +- / && key == "profiles" { p = $0; sub(/^ +- /, "", p); gsub(/["\047]/, "", p); prof = prof (prof == "" ? "" : ",") p }
        END { flush() }'
}

image_present() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# The services `up` starts: those of no profile or an enabled one. A pulled (not built) image
# that is neither on this host nor pullable leaves its service out, said on stderr, instead of
# failing the whole stack: Grafana, Alertmanager and nginx-rtmp are optional views/targets.
# Sets UP_SERVICES (empty: compose's own default set) and SKIPPED_SERVICES.
select_services() {
    UP_SERVICES=()
    SKIPPED_SERVICES=()
    if is_true "$DRY_RUN"; then
        say "# would leave out pulled services whose image is missing and cannot be pulled"
        return 0
    fi
    local table name image built prof active=() p on err var
    table=$(service_table) || die "'${COMPOSE[*]} config' failed; fix: run '$0 config' to see the error"
    while read -r name image built prof; do
        on=0
        if [[ "$prof" == - ]]; then on=1; else
            for p in ${prof//,/ }; do profile_enabled "$p" && on=1; done
        fi
        ((on)) || continue
        if [[ "$image" == - ]] || image_present "$image"; then
            active+=("$name")
        elif ((built)); then
            is_true "${NO_BUILD:-0}" &&
                die "image $image of $name is not built; fix: run '$0 build' first (or up without NO_BUILD)"
            active+=("$name")
        elif err=$(timeout "${PULL_TIMEOUT_S:-300}" "$DOCKER" pull "$image" 2>&1); then
            active+=("$name")
        else
            var=$(tr 'a-z-' 'A-Z_' <<<"$name")_IMAGE
            printf 'docker-compose_helper: %s is not started: its image %s is not on this host and could not be pulled (%s).\n  fix: pull it where a registry is reachable and load it here (docker save | docker load), or set %s in .env to an image you have; then run up again\n' \
                "$name" "$image" "$(tail -n 1 <<<"${err:-timed out after ${PULL_TIMEOUT_S:-300}s}")" "$var" >&2
            SKIPPED_SERVICES+=("$name")
        fi
    done <<<"$table"
    if ((${#SKIPPED_SERVICES[@]})); then
        UP_SERVICES=("${active[@]}")
        if [[ " ${SKIPPED_SERVICES[*]} " == *" alertmanager "* && "${ALERTMANAGER_TARGETS:-}" == alertmanager:9093 ]]; then
            export ALERTMANAGER_TARGETS= # no target rather than a name that does not resolve
        fi
    fi
}

cmd_up() {
    require_confinement
    init_files
    if ! is_true "${NO_BUILD:-0}"; then
        cmd_build
    fi
    local missing=""
    is_true "${PRIVILEGED:-false}" && missing=$(missing_capabilities)
    if [[ -n "$missing" ]]; then
        printf 'docker-compose_helper: warning: this host'"'"'s capability bounding set lacks %s; if cpu-rapl-client fails with "unable to apply caps", that is why.\n  fix: PRIVILEGED=false with the AppArmor profile loaded (sudo %s/AppArmor/install.sh), or an engine on a host with every capability\n' \
            "$missing" "$HERE" >&2
    fi
    select_services
    compose up -d "${UP_SERVICES[@]}"
    if ! is_true "$DRY_RUN"; then
        local grafana="Grafana http://${BIND_ADDRESS}:${GRAFANA_PORT} (user ${GRAFANA_ADMIN_USER:-admin}, password in grafana/admin-password)"
        [[ " ${SKIPPED_SERVICES[*]} " == *" grafana "* ]] && grafana="Grafana not started (see above)"
        say "wattpush is up: $grafana, Prometheus http://${BIND_ADDRESS}:${PROMETHEUS_PORT}"
        if ((${#SKIPPED_SERVICES[@]})); then
            say "left out (image unavailable): ${SKIPPED_SERVICES[*]}"
        fi
    fi
}

cmd_down() {
    local extra=() profile
    for profile in $KNOWN_PROFILES; do extra+=(--profile "$profile"); done
    if [[ "${1:-}" == "--volumes" || "${1:-}" == "-v" ]]; then
        compose "${extra[@]}" down --remove-orphans --volumes
    else
        compose "${extra[@]}" down --remove-orphans
    fi
}

cmd_status() {
    compose ps
}

cmd_logs() {
    local args=(--tail "${LOG_TAIL:-200}")
    if [[ "${1:-}" == "-f" || "${1:-}" == "--follow" ]]; then
        args+=(--follow)
        shift
    fi
    compose logs "${args[@]}" "$@"
}

cmd_config() {
    compose config
}

cmd_run_batch() {
    local batch=${1:-${DEFAULT_BATCH:-quick}}
    [[ $# -gt 0 ]] && shift
    init_files
    if [[ -f "$batch" ]]; then
        local dir name
        dir=$(cd -- "$(dirname -- "$batch")" && pwd)
        name=$(basename -- "$batch")
        compose --profile batch run --rm -v "$dir:/batch:ro" ffmpeg-runner batch --file "/batch/$name" "$@"
    elif [[ "$batch" == */* || "$batch" == *.json ]]; then
        die "batch file '$batch' does not exist; fix: give a path to a JSON batch file or a shipped name (quick, stress)" 2
    else
        compose --profile batch run --rm ffmpeg-runner batch --file "$batch" "$@"
    fi
}

cmd_report() {
    local source_args=() manifest=${1:-}
    if [[ -z "$manifest" ]]; then
        manifest=$(find "$HERE/results" -maxdepth 1 -name '*.json' -printf '%T@ %p\n' 2>/dev/null |
            sort -rn | head -n 1 | cut -d' ' -f2- || true)
    fi
    if [[ -n "$manifest" ]]; then
        [[ -f "$manifest" ]] || die "manifest '$manifest' does not exist; fix: pass a results/<run_id>.json file" 2
        local real
        real=$(cd -- "$(dirname -- "$manifest")" && pwd)/$(basename -- "$manifest")
        if [[ "$real" != "$HERE/results/"* ]]; then
            die "manifest '$manifest' is not under $HERE/results (the directory the advisor sees); fix: copy it there" 2
        fi
        source_args=(--results "/var/lib/wattpush/results/${real#"$HERE/results/"}")
    else
        source_args=(--since "${REPORT_SINCE:-2h}")
    fi
    local estimated=()
    is_true "${REPORT_ALLOW_ESTIMATED:-false}" && estimated=(--allow-estimated)
    local name
    name="report-$(date -u +%Y%m%dT%H%M%SZ).html"
    init_files
    compose --profile report run --rm advisor report --prometheus-url http://prometheus:9090 \
        "${source_args[@]}" "${estimated[@]}" --format table
    compose --profile report run --rm advisor report --prometheus-url http://prometheus:9090 \
        "${source_args[@]}" "${estimated[@]}" --format html --output "/var/lib/wattpush/reports/$name"
    say "HTML report: $HERE/reports/$name"
}

# ------------------------------------------------------------------ doctor

DOCTOR_FAILED=0
ok() { printf '  ok    %s\n' "$1"; }
warn() { printf '  warn  %s\n        fix: %s\n' "$1" "$2"; }
fail() {
    printf '  FAIL  %s\n        fix: %s\n' "$1" "$2"
    DOCTOR_FAILED=1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_doctor() {
    say "wattpush doctor ($ENV_FILE)"

    if ! command -v "$DOCKER" >/dev/null 2>&1; then
        fail "docker CLI not found" "install Docker Engine: https://docs.docker.com/engine/install/ (Debian: apt-get install docker.io)"
    elif "$DOCKER" info >/dev/null 2>&1; then
        ok "Docker engine reachable ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    else
        fail "Docker engine not reachable as $(id -un)" "start it (sudo systemctl start docker) and add yourself to the docker group (sudo usermod -aG docker $(id -un); log in again)"
    fi

    local flavour
    if (detect_compose) >/dev/null 2>&1; then
        detect_compose
        flavour=$(compose_flavour)
        case "$flavour" in
            v2*) ok "compose $flavour (${COMPOSE[*]})" ;;
            "v1 1.2"[89]* | "v1 1.3"*) ok "compose $flavour (${COMPOSE[*]}, profiles supported)" ;;
            *) fail "compose $flavour is too old (profiles need >= 1.28)" "install the docker-compose-plugin package (docker compose v2)" ;;
        esac
    else
        fail "no docker compose" "install the docker-compose-plugin package (docker compose v2) or docker-compose 1.29"
    fi

    # The container user (10001, group RAPL_GID) must be able to read energy_uj, unless
    # privileged (root). Mode and group are what decide, not what this shell can read.
    local zones readable=0 total=0 f gid mode rapl_gid=${RAPL_GID:-10002}
    zones=$(find "$POWERCAP_SOURCE/" -maxdepth 4 -name energy_uj 2>/dev/null || true)
    for f in $zones; do
        total=$((total + 1))
        read -r gid mode < <(stat -c '%g %a' "$f")
        if ((8#$mode & 8#004)) || { [[ "$gid" == "$rapl_gid" ]] && ((8#$mode & 8#040)); }; then
            readable=$((readable + 1))
        fi
    done
    if ((total == 0)); then
        warn "no RAPL energy counters under $POWERCAP_SOURCE (VM or driver not loaded): CPU power will be estimated (source=\"estimated\")" \
            "on bare metal load the driver: sudo modprobe intel_rapl_msr (Intel) or use a kernel >= 5.8 (AMD amd-rapl)"
    elif is_true "${PRIVILEGED:-false}" || ((readable == total)); then
        ok "RAPL: $total energy counters readable by the container"
    else
        warn "RAPL: $((total - readable)) of $total energy counters are not readable by group $rapl_gid (root-only since CVE-2020-8694): CPU power would be estimated" \
            "sudo $HERE/AppArmor/install.sh --rapl-group $rapl_gid (or PRIVILEGED=true in .env)"
    fi

    local name=${CPU_RAPL_APPARMOR_PROFILE:-wattpush-cpu-rapl} state=0
    local missing=""
    is_true "${PRIVILEGED:-false}" && missing=$(missing_capabilities)
    if [[ -n "$missing" ]]; then
        warn "PRIVILEGED=${PRIVILEGED}, but this host's capability bounding set lacks $missing: Docker cannot start a privileged container here (runc: unable to apply caps) unless the engine runs elsewhere" \
            "PRIVILEGED=false with the AppArmor profile (sudo $HERE/AppArmor/install.sh), or run the stack on a host/VM with every capability"
    elif is_true "${PRIVILEGED:-false}"; then
        ok "PRIVILEGED=${PRIVILEGED}: cpu-rapl-client runs privileged (docker-compose.privileged.yml), no AppArmor profile needed"
    elif ! apparmor_enabled; then
        fail "AppArmor is not enabled on this host; cpu-rapl-client cannot use the '$name' profile" "set PRIVILEGED=true in .env"
    else
        apparmor_profile_loaded || state=$?
        case $state in
            0) ok "AppArmor profile '$name' loaded" ;;
            1) fail "AppArmor profile '$name' not loaded" "sudo $HERE/AppArmor/install.sh --rapl-group ${RAPL_GID:-10002} (or PRIVILEGED=true in .env)" ;;
            *) warn "cannot read $APPARMOR_FS to check the AppArmor profile '$name'" "run the doctor with sudo, or load it: sudo $HERE/AppArmor/install.sh --rapl-group ${RAPL_GID:-10002}" ;;
        esac
    fi

    if profile_enabled nvidia; then
        local runtimes
        runtimes=$("$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null || true)
        if [[ "$runtimes" == *nvidia* ]] || command -v nvidia-container-cli >/dev/null 2>&1; then
            ok "NVIDIA container runtime present"
        else
            fail "profile nvidia is on but Docker has no NVIDIA runtime" "install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker (or drop nvidia from COMPOSE_PROFILES)"
        fi
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            ok "NVIDIA driver answers ($(nvidia-smi -L | wc -l) GPU(s))"
        else
            fail "nvidia-smi does not list a GPU" "install the NVIDIA driver, or set GPU_OPTIONAL=true / drop nvidia from COMPOSE_PROFILES"
        fi
    else
        ok "NVIDIA: profile nvidia off (add it to COMPOSE_PROFILES to measure GPUs)"
    fi

    local socket=${DOCKER_SOCKET:-/var/run/docker.sock}
    if [[ -S "$socket" ]]; then
        ok "Docker socket $socket (group id $(stat -c %g "$socket"), given to docker-overhead-client)"
    else
        fail "no Docker socket at $socket; docker-overhead-client cannot list containers" "set DOCKER_SOCKET in .env to the engine's socket"
    fi

    local port var
    for var in PROMETHEUS_PORT GRAFANA_PORT ALERTMANAGER_PORT RTMP_PORT; do
        port=${!var:-}
        [[ "$port" =~ ^[0-9]+$ ]] || continue
        [[ "$var" == ALERTMANAGER_PORT ]] && ! profile_enabled alerts && continue
        [[ "$var" == RTMP_PORT ]] && ! profile_enabled rtmp && continue
        if port_in_use "$port"; then
            warn "port $port ($var) is in use (fine if this stack is already up)" "stop what listens there (ss -ltnp 'sport = :$port') or change $var in .env"
        else
            ok "port $port ($var) free"
        fi
    done

    local problems
    problems=$(env_problems)
    if [[ -z "$problems" ]]; then
        ok ".env values valid"
    else
        while IFS= read -r line; do
            fail "${line%%; fix: *}" "${line#*; fix: }"
        done <<<"$problems"
    fi

    local pw=$HERE/grafana/admin-password
    if [[ -s "$pw" ]]; then
        if [[ "$(stat -c %a "$pw")" == 600 ]]; then
            ok "Grafana admin password file present (mode 600)"
        else
            warn "$pw is readable by others (mode $(stat -c %a "$pw"))" "chmod 600 $pw"
        fi
    else
        ok "Grafana admin password: generated on the first 'up'"
    fi

    if ((DOCTOR_FAILED)); then
        say "doctor: problems found (see the fixes above)"
        return 1
    fi
    say "doctor: all checks passed"
}

usage() {
    cat <<EOF
usage: $0 COMMAND [ARGS]

  up                  build the images and start the stack (needs the AppArmor profile loaded,
                      or PRIVILEGED=true); generates the Grafana password on first use
  down [--volumes]    stop and remove the containers (--volumes: and the data)
  status              containers and their health
  logs [-f] [SVC...]  recent logs (LOG_TAIL lines, default 200); -f follows
  config              the merged compose configuration that 'up' uses
  doctor              check Docker, compose, RAPL, AppArmor, NVIDIA, ports and .env; print fixes
  run-batch [FILE]    run an ffmpeg-runner batch: a JSON file or a shipped name
                      (default DEFAULT_BATCH=${DEFAULT_BATCH:-quick}); results in results/
  report [MANIFEST]   run the advisor on the newest (or given) results manifest; prints the
                      table and where the HTML report is (reports/)
  build               build the images only
  init                create grafana/admin-password, results/ and reports/ only

environment: PRIVILEGED=true|false  DRY_RUN=1 (print the commands)  NO_BUILD=1 (up without build)
             WATTPUSH_COMPOSE="docker-compose" (force a compose command)
EOF
}

main() {
    local command=${1:-help}
    [[ $# -gt 0 ]] && shift
    case "$command" in
        help | -h | --help)
            usage
            return 0
            ;;
        up | down | status | logs | config | doctor | run-batch | report | build | init) ;;
        *)
            usage >&2
            return 2
            ;;
    esac
    cd "$HERE"
    load_env
    if [[ "$command" == doctor ]]; then
        prepare_env
        cmd_doctor
        return
    fi
    validate_env
    prepare_env
    [[ "$command" == init ]] && {
        init_files
        return
    }
    detect_compose
    case "$command" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        logs) cmd_logs "$@" ;;
        config) cmd_config "$@" ;;
        run-batch) cmd_run_batch "$@" ;;
        report) cmd_report "$@" ;;
        build) cmd_build "$@" ;;
    esac
}

main "$@"
