#!/usr/bin/env bash
# Builds tsrun's default image: a sandbox directory with Debian's static BusyBox, the probe at
# /usr/local/bin/probe and a Singularity-style /.singularity.d, so exec, run and shell behave as
# they do with a Singularity sandbox.
#
# Usage: scripts/make-busybox-rootfs.sh [OUTDIR]    (default: images/busybox in the repo)
#
# Idempotent: OUTDIR/.tsrun-stamp holds a hash of what the image is made from (this script, the
# probe's source, the busybox binary); when it matches, nothing is done. Otherwise the image is
# built in OUTDIR.tmp and renamed into place, so a reader never sees a half-built tree.

# The scripts written into the image hold $ expressions for the container's shell to expand.
# shellcheck disable=SC2016
set -euo pipefail

PROG=make-busybox-rootfs
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUSYBOX=/bin/busybox

# What the image is made from; a change to any of them rebuilds it.
input_key() {
  cat "${BASH_SOURCE[0]}" "$REPO_ROOT/scripts/lib.sh" "$PROBE_SRC" "$BUSYBOX" |
    sha256sum | cut -d' ' -f1
}

is_current() {
  [[ -f "$1/$STAMP_NAME" && "$(cat "$1/$STAMP_NAME")" == "$2" ]]
}

make_dirs() {
  local root="$1"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,home,mnt,var}
  # The sticky world-writable /tmp a program expects; /root is private as on any distribution.
  install -d -m 1777 "$root/tmp" "$root/var/tmp"
  install -d -m 0700 "$root/root"
}

# One symlink per applet at the place BusyBox lists for it (bin/sh, usr/bin/env, sbin/ip...).
# Links are relative so they resolve inside the container and when the tree is read from the host.
link_applets() {
  local root="$1" applet up
  install -m 0755 "$BUSYBOX" "$root/bin/busybox"
  while read -r applet; do
    # linuxrc is an initrd entry point at the top of the tree; a container has no use for it.
    [[ "$applet" == bin/busybox || "$applet" != */* ]] && continue
    up="$(dirname "$applet" | sed 's|[^/]*|..|g')"
    ln -sf "$up/bin/busybox" "$root/$applet"
  done < <("$BUSYBOX" --list-full)
  [[ -L "$root/bin/sh" ]] || die "busybox --list-full gave no bin/sh"
}

write_etc() {
  local root="$1" version
  version="$("$BUSYBOX" | sed -n '1s/^BusyBox v\([^ ]*\).*/\1/p')"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
  printf '%s\n' 'ID=busybox' 'NAME="BusyBox"' "VERSION_ID=\"$version\"" \
    "PRETTY_NAME=\"BusyBox $version\"" >"$root/etc/os-release"
  # Empty files: the runtime binds the host's copies over them.
  : >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"
}

# Writes an executable script: path, then its lines.
write_script() {
  local path="$1"
  shift
  printf '%s\n' "$@" >"$path"
  chmod 0755 "$path"
}

# The lines every action script starts with: source the image's environment files in order.
SOURCE_ENV=(
  '#!/bin/sh'
  'for script in /.singularity.d/env/*.sh; do'
  '    if [ -f "$script" ]; then'
  '        . "$script"'
  '    fi'
  'done'
  ''
)

write_actions() {
  local d="$1/.singularity.d/actions"
  mkdir -p "$d"
  write_script "$d/exec" "${SOURCE_ENV[@]}" 'exec "$@"'
  write_script "$d/run" "${SOURCE_ENV[@]}" \
    'if test -x /.singularity.d/runscript; then' \
    '    exec /.singularity.d/runscript "$@"' \
    'fi' \
    'echo "No runscript found in the container, executing /bin/sh" >&2' \
    'exec /bin/sh "$@"'
  write_script "$d/shell" "${SOURCE_ENV[@]}" \
    'if test -n "${SINGULARITY_SHELL:-}" && test -x "$SINGULARITY_SHELL"; then' \
    '    exec $SINGULARITY_SHELL "$@"' \
    'elif test -x /bin/bash; then' \
    '    SHELL=/bin/bash; export SHELL' \
    '    exec /bin/bash --norc "$@"' \
    'elif test -x /bin/sh; then' \
    '    SHELL=/bin/sh; export SHELL' \
    '    exec /bin/sh "$@"' \
    'fi' \
    'echo "ERROR: /bin/sh does not exist in the container" >&2' \
    'exit 1'
  write_script "$d/start" "${SOURCE_ENV[@]}" \
    'if test -x /.singularity.d/startscript; then' \
    '    exec /.singularity.d/startscript "$@"' \
    'fi'
  write_script "$d/test" "${SOURCE_ENV[@]}" \
    'if test -x /.singularity.d/test; then' \
    '    exec /.singularity.d/test "$@"' \
    'fi' \
    'echo "No test script found in the container" >&2' \
    'exit 1'
}

write_env() {
  local d="$1/.singularity.d/env"
  mkdir -p "$d"
  write_script "$d/01-base.sh" '#!/bin/sh' '# Base environment: empty in this image.'
  write_script "$d/90-environment.sh" '#!/bin/sh' '# Custom environment shell code goes here.'
  write_script "$d/99-base.sh" '#!/bin/sh' \
    'LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/.singularity.d/libs"' \
    'PS1="Singularity> "' \
    'export LD_LIBRARY_PATH PS1'
}

write_singularity_dir() {
  local root="$1" d="$1/.singularity.d"
  mkdir -p "$d/libs"
  write_actions "$root"
  write_env "$root"
  # Without a runscript of its own, running the image runs a shell with the run arguments.
  write_script "$d/runscript" '#!/bin/sh' 'exec /bin/sh "$@"'
  write_script "$d/startscript" '#!/bin/sh'
  printf '%s\n' '{' '  "org.label-schema.schema-version": "1.0",' \
    '  "org.label-schema.name": "tsrun-busybox",' \
    '  "org.label-schema.description": "tsrun test image: Debian busybox-static and a probe"' \
    '}' >"$d/labels.json"
  # Older tools look for these two links at the top of a Singularity image.
  ln -s .singularity.d/runscript "$root/singularity"
  ln -s .singularity.d/env/90-environment.sh "$root/environment"
}

build_tree() {
  local root="$1"
  make_dirs "$root"
  link_applets "$root"
  write_etc "$root"
  write_singularity_dir "$root"
  install_probe "$root"
}

# Puts the finished tree at OUT. rename(2) cannot replace a non-empty directory, so an old image
# is moved aside first; the gap between the two renames is the only moment OUT is missing.
replace_dir() {
  local tmp="$1" out="$2"
  if [[ -e "$out" ]]; then
    mv -T "$out" "$out.old.$$"
  fi
  mv -T "$tmp" "$out"
  remove_tree "$out.old.$$"
}

main() {
  local out key
  out="$(absolute_path "${1:-$REPO_ROOT/images/busybox}")"
  need_packages busybox-static
  key="$(input_key)"
  is_current "$out" "$key" && return 0

  mkdir -p "$(dirname "$out")"
  lock_for_script "$out.lock"
  # Another run may have finished the image while this one waited for the lock.
  is_current "$out" "$key" && return 0

  remove_tree "$out.tmp"
  build_tree "$out.tmp"
  echo "$key" >"$out.tmp/$STAMP_NAME"
  replace_dir "$out.tmp" "$out"
  say "built $out"
}

main "$@"
