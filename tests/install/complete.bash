# Test helper: what bash's programmable completion offers for a command line, by calling the
# function `complete -p` registered for its first word, as readline would on Tab.
# Usage: _mo_complete 'modal-offload heavy --mode '   (prints one candidate per line)
_mo_complete() {
  local line=$1 spec fn
  read -r -a COMP_WORDS <<< "$line"
  [[ $line == *' ' ]] && COMP_WORDS+=('')
  COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  COMP_LINE=$line
  COMP_POINT=${#line}
  spec=$(complete -p "${COMP_WORDS[0]}") || return 1
  fn=${spec##*-F }
  fn=${fn%% *}
  COMPREPLY=()
  "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  printf '%s\n' "${COMPREPLY[@]}"
}
