# shellcheck shell=sh
# Routing activation, shared by scripts/activate_modal_only.sh and the shell bootstrap.
# POSIX sh that bash, zsh and dash can all source; zsh-only lines sit behind `eval` so the
# other shells never parse them. No subshells or external commands: this runs at every
# shell start.

# Set _mo_found to the nearest `.modal-shims` (with our marker) walking up from $1.
_mo_find_shims() {
  _mo_found=
  _mo_d=${1:-${PWD:-}}
  while :; do
    if [ -f "$_mo_d/.modal-shims/.modal-offload-shims" ]; then
      _mo_found=$_mo_d/.modal-shims
      break
    fi
    case $_mo_d in ''|/) break ;; esac
    _mo_d=${_mo_d%/*}
  done
  unset _mo_d
}

# PATH without any `.modal-shims` entry, in _mo_rest.
_mo_strip_path() {
  _mo_left=$PATH:
  _mo_rest=
  while [ -n "$_mo_left" ]; do
    _mo_e=${_mo_left%%:*}
    _mo_left=${_mo_left#*:}
    case $_mo_e in
      */.modal-shims|*/.modal-shims/) ;;
      *) _mo_rest=${_mo_rest:+$_mo_rest:}$_mo_e ;;
    esac
  done
  unset _mo_left _mo_e
}

# Put shims dir $1 first on PATH (once), export the markers, define deactivate_modal_only.
_mo_activate() {
  # Inside the remote or inside our own pipeline, routing must stay off (no recursion).
  if [ "${MODAL_OFFLOAD_REMOTE:-}" = 1 ] || [ "${MODAL_OFFLOAD_BYPASS:-}" = 1 ]; then
    return 0
  fi
  case ":${PATH:-}:" in
    ":$1:"*)
      # Already first (a second source, or inherited from the parent shell).
      if [ -z "${MODAL_OFFLOAD_SAVED_PATH+x}" ]; then
        _mo_strip_path
        MODAL_OFFLOAD_SAVED_PATH=$_mo_rest
      fi
      ;;
    *":$1:"*|*/.modal-shims:*|*/.modal-shims/:*)
      # Present but not first (macOS path_helper reorders PATH in login shells): move it.
      _mo_strip_path
      if [ -z "${MODAL_OFFLOAD_SAVED_PATH+x}" ]; then MODAL_OFFLOAD_SAVED_PATH=$_mo_rest; fi
      PATH=$1:$_mo_rest
      ;;
    *)
      MODAL_OFFLOAD_SAVED_PATH=${PATH:-}
      PATH=$1${PATH:+:$PATH}
      ;;
  esac
  unset _mo_rest
  MODAL_SHIMS_ACTIVE=1
  MODAL_OFFLOAD_SHIMS_DIR=$1
  export PATH MODAL_SHIMS_ACTIVE MODAL_OFFLOAD_SHIMS_DIR MODAL_OFFLOAD_SAVED_PATH
  if [ -n "${ZSH_VERSION:-}" ] && [ -r "$1/.zsh-absolute.zsh" ]; then
    . "$1/.zsh-absolute.zsh"
  fi
  hash -r 2>/dev/null || :
}

# Undo _mo_activate: PATH exactly as it was before, markers and zsh wrappers gone.
deactivate_modal_only() {
  if [ -n "${MODAL_OFFLOAD_SAVED_PATH+x}" ]; then
    PATH=$MODAL_OFFLOAD_SAVED_PATH
  else
    _mo_strip_path
    PATH=$_mo_rest
    unset _mo_rest
  fi
  export PATH
  unset MODAL_SHIMS_ACTIVE MODAL_OFFLOAD_SHIMS_DIR MODAL_OFFLOAD_SAVED_PATH
  if [ -n "${ZSH_VERSION:-}" ]; then
    eval 'if (( ${+_mo_abs_names} )); then unfunction $_mo_abs_names _mo_abs 2>/dev/null; unset _mo_abs_names; fi'
  fi
  hash -r 2>/dev/null || :
}
