#!/bin/sh
# Render the wattpush Prometheus configuration from the environment, check it, start Prometheus.
#
#   entrypoint.sh [PROMETHEUS_FLAG...]   render, check, then exec prometheus with the flags
#   entrypoint.sh --render-only          render and check, print the config path, exit
#
# Used as the container entrypoint (prometheus/Dockerfile) and natively (make demo), so every
# path is an environment variable with the container's value as default.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

: "${PROMETHEUS_BIN:=prometheus}"
: "${PROMTOOL_BIN:=promtool}"
: "${PROMETHEUS_TEMPLATE_DIR:=$here}"
: "${PROMETHEUS_RULES_DIR:=/etc/prometheus/rules}"
: "${PROMETHEUS_RENDER_DIR:=/etc/prometheus/rendered}"
: "${PROMETHEUS_DATA_DIR:=/prometheus}"
: "${PROMETHEUS_LISTEN_ADDRESS:=0.0.0.0:9090}"
: "${PROMETHEUS_RETENTION_TIME:=15d}"
: "${PROMETHEUS_RETENTION_SIZE:=0}"
: "${PROMETHEUS_SCRAPE_INTERVAL:=15s}"
: "${PROMETHEUS_EVALUATION_INTERVAL:=15s}"
: "${PROMETHEUS_OUT_OF_ORDER_WINDOW:=30m}"
: "${WATTPUSH_DEPLOYMENT:=wattpush}"
: "${ALERTMANAGER_TARGETS:=}"
: "${ALERT_POWER_WATTS:=300}"
: "${ALERT_GPU_TEMPERATURE_CELSIUS:=85}"

problems=""
problem() {
    problems="${problems}
  $1"
}

check_duration() { # NAME VALUE: Prometheus duration such as 15s, 30m, 15d (0 allowed)
    if ! printf '%s' "$2" | grep -Eq '^([0-9]+(ms|s|m|h|d|w|y))+$|^0$'; then
        problem "$1='$2' is not a Prometheus duration; fix: use e.g. 15s, 30m, 15d"
    fi
}
check_number() { # NAME VALUE
    if ! printf '%s' "$2" | grep -Eq '^[0-9]+([.][0-9]+)?$'; then
        problem "$1='$2' is not a number; fix: use a plain number such as 300"
    fi
}

check_duration PROMETHEUS_RETENTION_TIME "$PROMETHEUS_RETENTION_TIME"
check_duration PROMETHEUS_SCRAPE_INTERVAL "$PROMETHEUS_SCRAPE_INTERVAL"
check_duration PROMETHEUS_EVALUATION_INTERVAL "$PROMETHEUS_EVALUATION_INTERVAL"
check_duration PROMETHEUS_OUT_OF_ORDER_WINDOW "$PROMETHEUS_OUT_OF_ORDER_WINDOW"
if ! printf '%s' "$PROMETHEUS_RETENTION_SIZE" | grep -Eq '^[0-9]+(B|KB|MB|GB|TB|PB|EB)?$'; then
    problem "PROMETHEUS_RETENTION_SIZE='$PROMETHEUS_RETENTION_SIZE' is not a size; fix: use 0 (no size limit) or e.g. 20GB"
fi
check_number ALERT_POWER_WATTS "$ALERT_POWER_WATTS"
check_number ALERT_GPU_TEMPERATURE_CELSIUS "$ALERT_GPU_TEMPERATURE_CELSIUS"
if ! printf '%s' "$WATTPUSH_DEPLOYMENT" | grep -Eq '^[A-Za-z0-9_.-]+$'; then
    problem "WATTPUSH_DEPLOYMENT='$WATTPUSH_DEPLOYMENT' has odd characters; fix: use letters, digits, '.', '_' or '-'"
fi
case "$PROMETHEUS_LISTEN_ADDRESS" in
    *:[0-9]*) ;;
    *) problem "PROMETHEUS_LISTEN_ADDRESS='$PROMETHEUS_LISTEN_ADDRESS' has no port; fix: use HOST:PORT, e.g. 0.0.0.0:9090" ;;
esac

# "am1:9093,am2:9093" -> [am1:9093, am2:9093]; empty -> [] (alerts evaluated, not sent).
ALERTMANAGER_TARGETS_YAML="[]"
if [ -n "$ALERTMANAGER_TARGETS" ]; then
    if ! printf '%s' "$ALERTMANAGER_TARGETS" | grep -Eq '^[A-Za-z0-9_.-]+:[0-9]+(,[A-Za-z0-9_.-]+:[0-9]+)*$'; then
        problem "ALERTMANAGER_TARGETS='$ALERTMANAGER_TARGETS' is not a host:port list; fix: use e.g. alertmanager:9093 or leave it empty"
    else
        ALERTMANAGER_TARGETS_YAML="[$(printf '%s' "$ALERTMANAGER_TARGETS" | sed 's/,/, /g')]"
    fi
fi

if [ -n "$problems" ]; then
    echo "wattpush-prometheus: invalid settings:$problems" >&2
    exit 2
fi

PROMETHEUS_SELF_TARGET="localhost:${PROMETHEUS_LISTEN_ADDRESS##*:}"
export PROMETHEUS_SCRAPE_INTERVAL PROMETHEUS_EVALUATION_INTERVAL PROMETHEUS_OUT_OF_ORDER_WINDOW \
    PROMETHEUS_RULES_DIR PROMETHEUS_RENDER_DIR WATTPUSH_DEPLOYMENT ALERTMANAGER_TARGETS_YAML \
    PROMETHEUS_SELF_TARGET ALERT_POWER_WATTS ALERT_GPU_TEMPERATURE_CELSIUS

# Replace ${NAME} with the environment value; an unset NAME is an error (typo guard).
# Comment lines are copied as they are.
render() { # TEMPLATE OUTPUT
    awk '
        /^[ \t]*#/ { print; next }
        {
            out = ""; rest = $0
            while (match(rest, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
                name = substr(rest, RSTART + 2, RLENGTH - 3)
                if (!(name in ENVIRON)) {
                    printf "wattpush-prometheus: %s line %d uses ${%s}, which is not set\n", FILENAME, NR, name > "/dev/stderr"
                    failed = 1; exit 3
                }
                out = out substr(rest, 1, RSTART - 1) ENVIRON[name]
                rest = substr(rest, RSTART + RLENGTH)
            }
            print out rest
        }
        END { if (failed) exit 3 }
    ' "$1" >"$2.tmp"
    mv "$2.tmp" "$2"
}

mkdir -p "$PROMETHEUS_RENDER_DIR"
config="$PROMETHEUS_RENDER_DIR/prometheus.yml"
render "$PROMETHEUS_TEMPLATE_DIR/prometheus.yml.tmpl" "$config"
render "$PROMETHEUS_TEMPLATE_DIR/thresholds.yml.tmpl" "$PROMETHEUS_RENDER_DIR/thresholds.yml"

if command -v "$PROMTOOL_BIN" >/dev/null 2>&1; then
    if ! "$PROMTOOL_BIN" check config "$config" >"$PROMETHEUS_RENDER_DIR/check.log" 2>&1; then
        cat "$PROMETHEUS_RENDER_DIR/check.log" >&2
        echo "wattpush-prometheus: the rendered $config is invalid (see above); fix the rule files in $PROMETHEUS_RULES_DIR or the PROMETHEUS_* settings" >&2
        exit 2
    fi
fi

if [ "${1:-}" = "--render-only" ]; then
    echo "$config"
    exit 0
fi

exec "$PROMETHEUS_BIN" \
    --config.file="$config" \
    --storage.tsdb.path="$PROMETHEUS_DATA_DIR" \
    --storage.tsdb.retention.time="$PROMETHEUS_RETENTION_TIME" \
    --storage.tsdb.retention.size="$PROMETHEUS_RETENTION_SIZE" \
    --web.listen-address="$PROMETHEUS_LISTEN_ADDRESS" \
    --web.enable-remote-write-receiver \
    --web.enable-lifecycle \
    "$@"
