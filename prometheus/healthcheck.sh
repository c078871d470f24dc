#!/bin/bash
# Container healthcheck without curl/wget in the image: GET /-/ready over bash's /dev/tcp.
set -euo pipefail
port="${PROMETHEUS_LISTEN_ADDRESS:-0.0.0.0:9090}"
port="${port##*:}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /-/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 5 status <&3
exec 3<&-
[[ "$status" == *" 200 "* ]]
