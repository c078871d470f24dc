#!/usr/bin/env bash
# Load (or reload) the AppArmor profile that lets the cpu-rapl-client container read RAPL
# energy counters read-only, without running it privileged.
#
#   sudo AppArmor/install.sh                  load the profile into the kernel and persist it
#   sudo AppArmor/install.sh --rapl-group GID also let group GID read energy_uj (root-only on
#                                             kernels patched for CVE-2020-8694) via tmpfiles.d;
#                                             give the container `group_add: ["GID"]`
#   AppArmor/install.sh --check               compile only (no root, nothing loaded)
#   sudo AppArmor/install.sh --remove         unload the profile and remove what was installed
#
# Then start the container with security_opt apparmor=wattpush-cpu-rapl.
set -euo pipefail

PROFILE_NAME=wattpush-cpu-rapl
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE="$HERE/$PROFILE_NAME"
TARGET_DIR=${APPARMOR_DIR:-/etc/apparmor.d}
TMPFILES_CONF=${TMPFILES_CONF:-/etc/tmpfiles.d/wattpush-rapl.conf}

die() { echo "install.sh: $*" >&2; exit 1; }

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

mode=install
rapl_group=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) mode=check ;;
    --remove) mode=remove ;;
    --rapl-group)
      [ $# -ge 2 ] || die "--rapl-group needs a numeric group id, e.g. --rapl-group 10002"
      rapl_group=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1'; see --help" ;;
  esac
  shift
done
if [ -n "$rapl_group" ] && ! [[ "$rapl_group" =~ ^[0-9]+$ ]]; then
  die "--rapl-group '$rapl_group' is not a numeric group id; pass e.g. --rapl-group 10002"
fi

command -v apparmor_parser >/dev/null 2>&1 \
  || die "apparmor_parser not found; install it (Debian/Ubuntu: apt-get install apparmor)"
[ -f "$SOURCE" ] || die "profile $SOURCE is missing; run this script from a wattpush checkout"

if [ "$mode" = check ]; then
  apparmor_parser --skip-kernel-load --skip-cache "$SOURCE"
  echo "profile $PROFILE_NAME compiles"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "loading a profile needs root; run: sudo $0 $*"
if [ ! -d /sys/kernel/security/apparmor ]; then
  die "AppArmor is not enabled in this kernel (no /sys/kernel/security/apparmor); use PRIVILEGED=true or a read-only bind mount of /sys/devices/virtual/powercap instead"
fi

if [ "$mode" = remove ]; then
  if [ -f "$TARGET_DIR/$PROFILE_NAME" ]; then
    apparmor_parser --remove "$TARGET_DIR/$PROFILE_NAME" || true
    rm -f "$TARGET_DIR/$PROFILE_NAME"
  fi
  rm -f "$TMPFILES_CONF"
  echo "profile $PROFILE_NAME removed"
  exit 0
fi

install -m 0644 "$SOURCE" "$TARGET_DIR/$PROFILE_NAME"
# --replace loads or reloads; --write-cache keeps it across reboots with the apparmor service.
apparmor_parser --replace --write-cache "$TARGET_DIR/$PROFILE_NAME"
echo "profile $PROFILE_NAME loaded; start the container with security_opt apparmor=$PROFILE_NAME"

if [ -n "$rapl_group" ]; then
  # sysfs modes are reset at every boot and driver load: tmpfiles.d re-applies them.
  cat >"$TMPFILES_CONF" <<CONF
# wattpush cpu-rapl-client: let group $rapl_group read RAPL energy counters (read-only).
z /sys/devices/virtual/powercap/intel-rapl/intel-rapl:*/energy_uj 0440 root $rapl_group -
z /sys/devices/virtual/powercap/intel-rapl/intel-rapl:*/intel-rapl:*/energy_uj 0440 root $rapl_group -
z /sys/devices/virtual/powercap/intel-rapl-mmio/intel-rapl-mmio:*/energy_uj 0440 root $rapl_group -
CONF
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create "$TMPFILES_CONF"
  fi
  echo "energy_uj readable by group $rapl_group; add group_add: [\"$rapl_group\"] to the service"
fi
