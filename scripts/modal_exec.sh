#!/usr/bin/env sh
# The original command gateway, now a thin door into `modal-offload exec`.
# Usage: modal_exec.sh [--sync-back|--no-sync-back] (-- CMD [ARGS...] | -c "SHELL STRING")
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
. "$here/_cli.sh"

usage() {
  echo "usage: $0 [--sync-back|--no-sync-back] (-- CMD [ARGS...] | -c|--cmd \"SHELL STRING\")"
}

flags=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sync-back) flags="$flags --sync-back"; shift ;;
    --no-sync-back) flags="$flags --no-sync-back"; shift ;;
    -h|--help) usage; exit 0 ;;
    -c|--cmd)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      # shellcheck disable=SC2086 # flags holds only our own fixed words
      exec_cli exec $flags -c "$2" ;;
    --) shift
      [ $# -ge 1 ] || { usage >&2; exit 2; }
      # shellcheck disable=SC2086
      exec_cli exec $flags -- "$@" ;;
    *) usage >&2; exit 2 ;;
  esac
done
usage >&2
exit 2
