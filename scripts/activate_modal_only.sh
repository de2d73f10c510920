# shellcheck shell=sh
# Source me in bash or zsh:   source ./scripts/activate_modal_only.sh
# Puts the workspace's .modal-shims first on PATH, so most commands run remotely;
# `deactivate_modal_only` restores PATH exactly. Install the shims first:
# ./scripts/install_modal_shims.sh (or `modal-offload shims install`): only folders that
# command recorded for you activate (issue 13), never one a repository or archive brought.
if [ -n "${BASH_VERSION:-}" ]; then
  eval '_mo_self=${BASH_SOURCE[0]}'
elif [ -n "${ZSH_VERSION:-}" ]; then
  eval '_mo_self=${(%):-%x}'
else
  _mo_self=./scripts/activate_modal_only.sh
fi
_mo_repo=$(CDPATH= cd -- "$(dirname -- "$_mo_self")/.." && pwd)
. "$_mo_repo/src/modal_offload/templates/modal_activate.sh"
# The workspace is the one we are in; from elsewhere, this repo itself.
_mo_find_shims "${PWD:-}"
if [ -z "$_mo_found" ] && [ -f "$_mo_repo/.modal-shims/.modal-offload-shims" ]; then
  if _mo_trust "$_mo_repo/.modal-shims"; then
    _mo_found=$_mo_repo/.modal-shims
  else
    _mo_untrusted "$_mo_repo/.modal-shims"
  fi
  unset _mo_why
fi
if [ -n "$_mo_found" ]; then
  _mo_activate "$_mo_found"
  echo "modal-offload: routing active ($_mo_found); deactivate_modal_only to undo" >&2
  unset _mo_found _mo_self _mo_repo
else
  echo "modal-offload: no shims installed here: run ./scripts/install_modal_shims.sh" >&2
  unset _mo_found _mo_self _mo_repo
  false
fi
