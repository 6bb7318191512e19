#!/usr/bin/env bash
# One-shot set-up of a fresh Debian 12 machine for building and testing tsrun. Run as root from
# anywhere: bash scripts/setup.sh [-v]
#
# Installs the Debian packages the project, its tests and its benchmark use (only those missing,
# without recommends), runs npm install (which builds the addon and the TypeScript), and builds
# the default image in images/busybox. Prints one line per step; -v shows every command's output.
# Exits non-zero naming the step that failed.
set -euo pipefail

PROG=setup
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  # Images and the filesystems tsrun mounts: debootstrap for the Debian test rootfs, squashfs
  # and ext3 images, FUSE fallbacks for users without loop devices.
  busybox-static debootstrap squashfs-tools squashfuse e2fsprogs fuse-overlayfs
  # Tools the tests call: mount, nsenter, unshare, setpriv (util-linux), ps and pgrep (procps),
  # ip (iproute2), newuidmap for user-namespace tests (uidmap), strace for debugging.
  util-linux mount procps iproute2 uidmap strace
  # The native addon (node-gyp: python3, make, g++), its seccomp support, the static probe.
  python3 make g++ gcc libc6-dev libseccomp-dev
  # Peer runtimes and the timer used by bench/.
  runc crun bubblewrap hyperfine
)

step() { say "$*"; }

check_node() {
  command -v node >/dev/null || die "node not found: install Node.js 20 (>= 20.19) first"
  command -v npm >/dev/null || die "npm not found: install npm with Node.js"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  ((major >= 20)) || die "Node.js $(node --version) is too old: tsrun needs 20.19 or later"
}

install_packages() {
  local missing
  missing="$(missing_packages "${PACKAGES[@]}" | tr '\n' ' ')"
  if [[ -z "${missing// /}" ]]; then
    step "Debian packages: all present"
    return
  fi
  step "Debian packages: installing $missing"
  need_packages "${PACKAGES[@]}"
}

npm_install() {
  step "npm install (dependencies, addon, TypeScript build)"
  # The lifecycle scripts of the root package build the addon and the TypeScript; as root npm
  # would run them as the owner of the tree, which is root here, so no --unsafe-perm is needed.
  (cd "$REPO_ROOT" && run_quiet "npm install" npm install --no-audit --no-fund --loglevel=error)
}

build_image() {
  step "default image: images/busybox"
  bash "$REPO_ROOT/scripts/make-busybox-rootfs.sh" "$REPO_ROOT/images/busybox"
}

# The fixed, empty mount point of every container's session tmpfs: users without root cannot
# make it, so the set-up does.
session_dir() {
  step "session dir: /var/lib/tsrun/mnt/session"
  mkdir -p /var/lib/tsrun/mnt/session
  chmod 755 /var/lib/tsrun /var/lib/tsrun/mnt /var/lib/tsrun/mnt/session
}

# Tests of the unprivileged path need user namespaces; say so now rather than in a failing test.
warn_about_kernel() {
  local f=/proc/sys/kernel/unprivileged_userns_clone
  if [[ -r "$f" && "$(cat "$f")" == 0 ]]; then
    say "warning: $f is 0: unprivileged user namespaces are off; non-root tests will skip"
  fi
  if [[ "$(cat /proc/sys/user/max_user_namespaces)" == 0 ]]; then
    say "warning: user.max_user_namespaces is 0: user-namespace tests will skip"
  fi
}

main() {
  case "${1:-}" in
    '') ;;
    -v) export TSRUN_SCRIPTS_VERBOSE=1 && VERBOSE=1 ;;
    *) die "usage: scripts/setup.sh [-v]" ;;
  esac
  need_root
  check_node
  install_packages
  npm_install
  build_image
  session_dir
  warn_about_kernel
  step "done"
}

main "$@"
