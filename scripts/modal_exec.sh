#!/usr/bin/env sh
# The original command gateway, now a thin door into `modal-offload exec`.
# Usage: modal_exec.sh [--sync-back|--no-sync-back] [-t|-T] (-- CMD [ARGS...] | -c "SHELL STRING")
# Arguments go unchanged to `modal-offload exec`, whose one parser (exec_args.py) reads them
# and answers -h and bad usage (exit 2).
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
. "$here/_cli.sh"
exec_cli exec "$@"
