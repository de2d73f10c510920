#!/usr/bin/env sh
# The original shim installer, now a thin door into `modal-offload shims install`.
# Then: source ./scripts/activate_modal_only.sh
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
. "$here/_cli.sh"
exec_cli shims "${1:-install}"
