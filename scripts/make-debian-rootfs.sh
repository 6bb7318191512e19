#!/usr/bin/env bash
# Builds a Debian bookworm minbase rootfs with debootstrap, for tests that need a full distribution
# (a dynamic loader, dpkg, bash, coreutils), and installs the probe at /usr/local/bin/probe.
#
# Usage: scripts/make-debian-rootfs.sh [OUTDIR]   (default: /var/cache/tsrun-test/debian-bookworm)
#
# Cached: when OUTDIR/.tsrun-stamp exists it only refreshes the probe (a file compare) and returns.
# Otherwise debootstrap fills OUTDIR.tmp (about 40 s), which is renamed to OUTDIR when complete.
# A finished debootstrap left in OUTDIR.tmp by an interrupted run is reused, not rebuilt.
set -euo pipefail

PROG=make-debian-rootfs
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
MIRROR="${TSRUN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# debootstrap removes DIR/debootstrap only after "Base system installed successfully", so a tree
# without it, whose packages dpkg all reports installed, is a complete base system.
is_complete_debootstrap() {
  local root="$1" status="$1/var/lib/dpkg/status"
  [[ -x "$root/bin/sh" && -s "$status" && ! -e "$root/debootstrap" ]] || return 1
  ! grep '^Status:' "$status" | grep -qv '^Status: install ok installed$'
}

run_debootstrap() {
  local tmp="$1"
  need_packages debootstrap
  remove_tree "$tmp"
  say "running debootstrap $SUITE into $tmp (about 40 s)"
  run_quiet "debootstrap" debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR"
  is_complete_debootstrap "$tmp" || die "debootstrap exited 0 but $tmp is incomplete"
}

# Makes OUT from a reused or new debootstrap in OUT.tmp, with the probe and the stamp.
build_cache() {
  local out="$1" tmp="$1.tmp"
  if is_complete_debootstrap "$tmp"; then
    say "reusing the complete debootstrap in $tmp"
  else
    run_debootstrap "$tmp"
  fi
  install_probe "$tmp"
  echo "debootstrap --variant=minbase $SUITE $MIRROR" >"$tmp/$STAMP_NAME"
  # A directory at OUT without a stamp is debris of an unfinished run; the stamp decides.
  remove_tree "$out"
  mv -T "$tmp" "$out"
  say "built $out"
}

main() {
  local out
  out="$(absolute_path "${1:-/var/cache/tsrun-test/debian-$SUITE}")"
  need_root
  if [[ ! -f "$out/$STAMP_NAME" ]]; then
    mkdir -p "$(dirname "$out")"
    lock_for_script "$out.lock"
    # Another run may have finished the rootfs while this one waited for the lock.
    [[ -f "$out/$STAMP_NAME" ]] || build_cache "$out"
  fi
  # The cache outlives probe changes; refreshing the probe is a file compare when it is current.
  install_probe "$out"
}

main "$@"
