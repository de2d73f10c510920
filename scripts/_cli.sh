# Sourced by the scripts: find the modal-offload CLI (repo venv first) and exec it.
_repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
exec_cli() {
  if [ -x "$_repo/.venv/bin/modal-offload" ]; then
    exec "$_repo/.venv/bin/modal-offload" "$@"
  elif command -v modal-offload >/dev/null 2>&1; then
    exec modal-offload "$@"
  else
    PYTHONPATH="$_repo/src${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m modal_offload "$@"
  fi
}
