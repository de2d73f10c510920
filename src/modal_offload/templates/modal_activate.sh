# shellcheck shell=sh
# Routing activation, shared by scripts/activate_modal_only.sh and the shell bootstrap.
# POSIX sh that bash, zsh and dash can all source; zsh-only lines sit behind `eval` so the
# other shells never parse them. This runs at every shell start: outside a workspace with
# shims it starts no process; inside one, a single `find` checks the shims are trusted.

# Where `shims install` records the folders it wrote: paths.shims_registry() mirrored in sh
# (state dir = MODAL_OFFLOAD_STATE_DIR, else platformdirs' user_state_dir: an absolute
# XDG_STATE_HOME, else ~/Library/Application Support on macOS, ~/.local/state elsewhere).
# tests/routing/test_trust.py keeps the two in step. Sets _mo_reg.
_mo_registry() {
  _mo_reg=${MODAL_OFFLOAD_STATE_DIR:-}
  case $_mo_reg in '~') _mo_reg=${HOME:-} ;; '~/'*) _mo_reg=${HOME:-}/${_mo_reg#'~/'} ;; esac
  if [ -z "$_mo_reg" ]; then
    case ${XDG_STATE_HOME:-} in
      /*) _mo_reg=$XDG_STATE_HOME/modal-offload ;;
      *)
        case ${OSTYPE:-$(uname -s 2>/dev/null)} in
          [Dd]arwin*) _mo_reg=${HOME:-}/Library/Application\ Support/modal-offload ;;
          *) _mo_reg=${HOME:-}/.local/state/modal-offload ;;
        esac ;;
    esac
  fi
  _mo_reg=$_mo_reg/trusted-shims
}

# Is shims folder $1 listed in the registry (exactly, or by its physical path)? 0 if so,
# with the folder's recorded inode in _mo_ino.
_mo_listed() {
  _mo_hit=1
  while IFS= read -r _mo_line || [ -n "$_mo_line" ]; do
    # Literal TABs separate the path, its content hash and its inode.
    case $_mo_line in "$1	"*)
      _mo_hit=0; _mo_ino=${_mo_line#"$1	"}; _mo_ino=${_mo_ino#*	}; break ;;
    esac
  done < "$_mo_reg"
  unset _mo_line
  return $_mo_hit
}

# May shells activate shims folder $1? Only if `shims install` recorded it in the registry,
# which lives in the user's state folder, outside any workspace: a marker file that a cloned
# repository or an unpacked archive carries proves nothing. Returns 0 when trusted, else sets
# _mo_why. No Python: one `find` decides what the shell cannot see (modes, change times).
_mo_trust() {
  _mo_why=
  _mo_registry
  case $_mo_reg in
    /*) ;;
    *) _mo_why="the registry path $_mo_reg is not absolute"; return 1 ;;
  esac
  if [ -L "$1" ] || [ ! -d "$1" ]; then
    _mo_why="it is not a plain folder"; return 1
  fi
  if [ ! -f "$_mo_reg" ] || [ ! -r "$_mo_reg" ]; then
    _mo_why="not installed by you (no registry yet)"; return 1
  fi
  if [ ! -O "$_mo_reg" ]; then
    _mo_why="the registry $_mo_reg is not yours"; return 1
  fi
  if ! _mo_listed "$1"; then
    # The registry holds physical paths; $PWD may have come through a symlink.
    _mo_phys=$(unset CDPATH; cd -P -- "$1" >/dev/null 2>&1 && pwd -P)
    if [ -z "$_mo_phys" ] || [ "$_mo_phys" = "$1" ] || ! _mo_listed "$_mo_phys"; then
      unset _mo_phys
      _mo_why="not installed by you (not in $_mo_reg)"; return 1
    fi
    unset _mo_phys
  fi
  case $_mo_ino in
    ''|*[!0-9]*) _mo_why="recorded by an older modal-offload"; unset _mo_ino; return 1 ;;
  esac
  # Refused: a registry others can write, anything in the folder that changed status
  # (content, mode, owner, a file added, removed or renamed) after the registry was written,
  # or another folder than the one recorded (its inode): a tree made earlier and renamed
  # into place keeps its old ctimes. ctime cannot be set back without root (tar -x, touch -d).
  # (An assignment's status is its command substitution's: find's, without a second fork.)
  _mo_chk=$(find "$_mo_reg" "$1" \( -perm -0020 -o -perm -0002 -o -cnewer "$_mo_reg" \
    -o -type d ! -inum "$_mo_ino" \) -print -quit 2>/dev/null) && [ -z "$_mo_chk" ] \
    && { unset _mo_chk _mo_ino; return 0; }
  unset _mo_ino
  case $_mo_chk in
    "$_mo_reg"*) _mo_why="the registry $_mo_reg is writable by others" ;;
    *) _mo_why="changed since \`modal-offload shims install\`" ;;
  esac
  unset _mo_chk
  return 1
}

# Set _mo_found to the nearest trusted `.modal-shims` (one with our marker) walking up from
# $1. A folder that carries the marker but is not trusted is skipped, with one line on stderr.
_mo_find_shims() {
  _mo_found=
  _mo_d=${1:-${PWD:-}}
  while :; do
    if [ -f "$_mo_d/.modal-shims/.modal-offload-shims" ]; then
      if _mo_trust "$_mo_d/.modal-shims"; then
        _mo_found=$_mo_d/.modal-shims
        break
      fi
      _mo_untrusted "$_mo_d/.modal-shims"
    fi
    case $_mo_d in ''|/) break ;; esac
    _mo_d=${_mo_d%/*}
  done
  unset _mo_d _mo_why
}

_mo_untrusted() {
  echo "modal-offload: ignoring shims in $1: $_mo_why; if they are yours, run" \
    "\`modal-offload shims install\` there (\`modal-offload doctor\` lists them)" >&2
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
