# Test helper: drive a real interactive zsh (reading the test HOME's ~/.zshrc) through a
# pseudo-terminal, press Tab after each command line given, and record every candidate the
# completion system offers (a `compadd` wrapper writes them to $1). Run with `zsh -f`.
zmodload zsh/zpty || exit 2
capture=$1
shift
zpty -b mo 'zsh -i'
zpty -w mo 'print -r -- ${:-REA}DY'  # typed text differs from the output waited for
zpty -r -m mo out '*READY*' || exit 3
# Keys typed before zle is reading (between two commands) meet the terminal in canonical
# mode, where Ctrl-U erases the pending line before zsh ever sees the Tab: so each line is
# typed only once the prompt is drawn, which zle does after switching to raw mode.
zpty -w mo "PS1='MO''PROMPT> '"  # typed text differs from the prompt waited for
zpty -r -m mo out '*MOPROMPT> *' || exit 3
zpty -w mo "compadd() { local -a _mo_hits; builtin compadd -O _mo_hits \"\$@\";\
 print -rl -- \"\${_mo_hits[@]}\" >> ${(q)capture}; builtin compadd \"\$@\"; }"
zpty -r -m mo out '*MOPROMPT> *' || exit 3
n=0
for line in "$@"; do
  (( n++ ))
  print -r -- "=== $line" >> $capture
  zpty -w -n mo "$line"$'\t'
  # Keys are handled in order: DONE prints only once the completion above has finished.
  zpty -w mo $'\C-u'"print -r -- \${:-DO}NE$n"
  zpty -r -m mo out "*DONE$n*MOPROMPT> *" || exit 4
done
zpty -d mo
