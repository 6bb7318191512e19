# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it; it does nothing by itself.
# Each script sets PROG (its name in messages) before sourcing.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROBE_SRC="$REPO_ROOT/test/fixtures/probe/probe.c"
PROBE_BIN="$REPO_ROOT/test/fixtures/probe/probe"
# shellcheck disable=SC2034 # used by the scripts that source this file
STAMP_NAME=".tsrun-stamp"

# Set TSRUN_SCRIPTS_VERBOSE=1 to see the output of every command instead of a one-line summary.
VERBOSE="${TSRUN_SCRIPTS_VERBOSE:-0}"

say() { echo "${PROG:-tsrun}: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
  [[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and builds root-owned trees)"
}

# Runs a command with its output kept in a log; prints the log only if the command fails, so a
# successful run stays quiet and a failed one shows why.
run_quiet() {
  local what="$1" log status=0
  shift
  if [[ "$VERBOSE" == 1 ]]; then
    "$@" || die "$what failed (exit $?)"
    return
  fi
  log="$(mktemp)"
  "$@" >"$log" 2>&1 || status=$?
  if ((status != 0)); then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "$what failed (exit $status; last lines of its output above)"
  fi
  rm -f "$log"
}

# Prints the Debian packages among the arguments that are not installed.
missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
      echo "$pkg"
  done
}

# Installs the packages that are missing, without recommends; does not touch apt otherwise, so a
# machine that has everything needs no network.
need_packages() {
  local missing
  missing="$(missing_packages "$@" | tr '\n' ' ')"
  [[ -n "${missing// /}" ]] || return 0
  need_root
  say "installing Debian packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  run_quiet "apt-get update" apt-get update
  # shellcheck disable=SC2086 # one word per package
  run_quiet "apt-get install $missing" apt-get install -y --no-install-recommends $missing
}

# Holds an exclusive lock on FILE for the rest of the script, so two runs that build the same
# tree (parallel CI jobs, a test and a manual run) wait for each other instead of interleaving.
lock_for_script() {
  exec 9>"$1"
  flock 9
}

# Builds the static probe if it is missing or older than its source; prints its path.
build_probe() {
  if [[ ! -x "$PROBE_BIN" || "$PROBE_SRC" -nt "$PROBE_BIN" ]]; then
    need_packages gcc libc6-dev
    # Build beside the target and rename, so a concurrent reader never sees half a binary.
    gcc -static -O2 -Wall -Wextra -o "$PROBE_BIN.tmp.$$" "$PROBE_SRC" ||
      die "compiling $PROBE_SRC failed"
    mv -f "$PROBE_BIN.tmp.$$" "$PROBE_BIN"
  fi
  echo "$PROBE_BIN"
}

# Copies the probe to ROOTFS/usr/local/bin/probe unless an identical copy is there.
install_probe() {
  local rootfs="$1" probe dest
  probe="$(build_probe)"
  dest="$rootfs/usr/local/bin/probe"
  cmp -s "$probe" "$dest" && return 0
  mkdir -p "$rootfs/usr/local/bin"
  install -m 0755 "$probe" "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
}

# Rebuilds the native addon when it is missing or was built before it linked libseccomp (an
# `npm install` run without libseccomp-dev fails to build it).
rebuild_addon_without_seccomp() {
  local addon="$REPO_ROOT/build/Release/tsrun.node"
  if [[ -f "$addon" ]] && grep -q seccompCompile "$addon"; then
    return 0
  fi
  say "building the native addon (node-gyp)"
  (cd "$REPO_ROOT" && run_quiet "npm run install" npm run install)
}

# Prints the mount points at DIR or below it, deepest first.
mounts_under() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# Removes a tree that a killed debootstrap may have left with proc, sys or dev mounted in it:
# unmounts what is mounted at or under it, deepest first, and refuses to remove anything while a
# mount remains, since rm would follow a bind into the host's files.
remove_tree() {
  local dir mnt
  dir="$(realpath -m "$1")"
  [[ -e "$dir" ]] || return 0
  while read -r mnt; do
    umount -l "$mnt" || true
  done < <(mounts_under "$dir")
  if [[ -n "$(mounts_under "$dir")" ]] || mountpoint -q "$dir"; then
    die "cannot remove $dir: mounts remain under it"
  fi
  rm -rf --one-file-system "$dir"
}

# Makes a path absolute without requiring it to exist.
absolute_path() {
  case "$1" in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
  esac
}
