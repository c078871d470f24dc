#!/usr/bin/env bats
# The compose files validate with the docker-compose 1.29 binary (and `docker compose` v2 when
# installed); `config` needs no Docker engine.

REPO="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"

setup() {
    command -v docker-compose >/dev/null || skip "docker-compose 1.29 is not installed (apt-get install docker-compose)"
    cd "$REPO"
    unset CPU_RAPL_SECURITY_OPT COMPOSE_PROFILES PRIVILEGED
}

@test "docker-compose -f docker-compose.yml config validates" {
    run docker-compose -f docker-compose.yml config --quiet
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    run docker-compose -f docker-compose.yml config --services
    for svc in prometheus grafana cpu-rapl-client gpu-nvml-client docker-overhead-client \
        ffmpeg-runner advisor nginx-rtmp alertmanager base-monitoring-client; do
        grep -qx "$svc" <<<"$output" || { echo "missing $svc"; false; }
    done
}

@test "the privileged overlay validates with the variable the helper sets" {
    CPU_RAPL_SECURITY_OPT=apparmor=unconfined run docker-compose -f docker-compose.yml \
        -f docker-compose.privileged.yml config --quiet
    [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "the privileged overlay refuses to load without it, saying how to fix it" {
    run docker-compose -f docker-compose.yml -f docker-compose.privileged.yml config --quiet
    [ "$status" -ne 0 ]
    [[ "$output" == *"set CPU_RAPL_SECURITY_OPT=apparmor=unconfined"* ]]
}

@test "the helper's config is the merged configuration" {
    PRIVILEGED=true run "$REPO/docker-compose_helper.sh" config
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ "$output" == *"privileged: true"* ]]
    [[ "$output" == *"apparmor=unconfined"* ]]
    [[ "$output" != *"apparmor=wattpush-cpu-rapl"* ]]
}

@test "docker compose v2 validates the same files (when installed)" {
    docker compose version >/dev/null 2>&1 || skip "docker compose v2 is not installed"
    run docker compose -f docker-compose.yml config --quiet
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    CPU_RAPL_SECURITY_OPT=apparmor=unconfined run docker compose -f docker-compose.yml \
        -f docker-compose.privileged.yml config --quiet
    [ "$status" -eq 0 ] || { echo "$output"; false; }
}
