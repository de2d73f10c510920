# Sourced by the scripts: find the modal-offload CLI (repo venv first) and exec it.
_repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
exec_cli() {
  if [ -x "$_repo/.venv/bin/modal-offload" ]; then
    exec "$_repo/.venv/bin/modal-offload" "$@"
  elif command -v modal-offload >/dev/null 2>&1; then
    exec modal-offload "$@"
  else
    # Not `-m` (nor PYTHONPATH): the working folder is a workspace, whose `json.py` must not
    # replace the standard one. Same bootstrap as src/modal_offload/isolated.py.
    exec python3 -I -c 'import sys, runpy; sys.argv[1] and sys.path.append(sys.argv[1]); sys.argv = sys.argv[2:]; runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)' "$_repo/src" modal_offload "$@"
  fi
}
