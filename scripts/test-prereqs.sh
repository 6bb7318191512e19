#!/usr/bin/env bash
# What `npm test` needs besides npm install, made or installed when missing (as root): the tools
# the image tests call (mksquashfs, mkfs.ext3, losetup), libseccomp for the addon, the busybox
# image and the Debian rootfs cache. Quick when everything is there already.
set -euo pipefail

PROG=test-prereqs
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_packages squashfs-tools e2fsprogs util-linux libseccomp-dev
rebuild_addon_without_seccomp
bash "$(dirname "${BASH_SOURCE[0]}")/make-busybox-rootfs.sh"
bash "$(dirname "${BASH_SOURCE[0]}")/make-debian-rootfs.sh"

# An ordinary user for the user-namespace tests (they run tsrun as this user with setpriv).
if [[ "$(id -u)" == 0 ]] && ! id tsrun-test >/dev/null 2>&1; then
  say "adding the unprivileged test user tsrun-test"
  useradd --create-home --shell /bin/sh --comment 'tsrun tests' tsrun-test
fi

# Some tests run this checkout's bin/tsrun (and read ../shared) as tsrun-test or as nobody. A
# checkout below a folder those users may not search (a `mktemp -d` folder is mode 0700) would
# make them fail or skip: such a folder gets an ACL entry giving each of them search (x)
# permission, and nothing more. Checked from / down, since a folder's check needs its parents.
if [[ "$(id -u)" == 0 ]]; then
  folders=()
  dir="$REPO_ROOT"
  while [[ "$dir" != / ]]; do
    folders=("$dir" "${folders[@]}")
    dir="$(dirname "$dir")"
  done
  for user in tsrun-test nobody; do
    id "$user" >/dev/null 2>&1 || continue
    for dir in "${folders[@]}"; do
      setpriv --reuid "$user" --regid "$(id -g "$user")" --clear-groups test -x "$dir" && continue
      need_packages acl
      say "letting $user search $dir (setfacl -m u:$user:x)"
      setfacl -m "u:$user:x" "$dir"
    done
  done
fi
