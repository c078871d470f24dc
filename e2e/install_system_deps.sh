#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages wattpush's demo and tests use. Idempotent.
set -euo pipefail

# chromium: the advisor's HTML report is loaded and measured in headless Chromium by its tests.
packages=(prometheus victoria-metrics ffmpeg shellcheck bats apparmor nginx libnginx-mod-rtmp
          debootstrap docker.io docker-compose python3-venv curl jq chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages enable and start their services where systemd runs; tests start their own.
