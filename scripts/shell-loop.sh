#!/usr/bin/env bash
# Inside the shell user's session (start-shell.sh's dtach): run the shell, and again when it
# ends. After `exit` it comes back at once; a shell that keeps ending at once (a wrong
# terminal.shell, a broken rc) comes back after 1, 2, 4 ... 60 s, saying why on the pane, so a
# respawn storm cannot happen. The shell user gets at most MAX_PROCESSES processes (a fork bomb
# typed on stream stops there).
set -u
MAX_PROCESSES=256
ulimit -u "$MAX_PROCESSES" 2>/dev/null || true
shell=${SHELL:-/bin/bash}
flags=(-i)
[ "$(basename "$shell")" = bash ] && flags=(--norc --noprofile -i)  # the prompt comes from PS1
cd "$HOME" 2>/dev/null || cd /
failures=0
while :; do
  started=$(date +%s)
  PS1='\W \$ ' "$shell" "${flags[@]}"
  status=$?
  ran=$(( $(date +%s) - started ))
  if [ "$ran" -lt 2 ]; then failures=$(( failures + 1 )); else failures=0; fi
  if [ "$failures" -eq 0 ]; then
    printf '[the shell ended (status %s); a new one]\r\n' "$status"
    continue
  fi
  pause=$(( 1 << (failures < 7 ? failures - 1 : 6) ))
  [ "$pause" -gt 60 ] && pause=60
  if [ "$failures" -ge 3 ]; then
    printf '[%s keeps ending at once (status %s): is terminal.shell a shell? again in %ss]\r\n' "$shell" "$status" "$pause"
  else
    printf '[the shell ended after %ss (status %s); again in %ss]\r\n' "$ran" "$status" "$pause"
  fi
  sleep "$pause"
done
