#!/bin/bash
# The image's entrypoint: `imapd-entrypoint [imapd arguments | program ...]`.
#  - `serve ...`: first seed the users of IMAPD_USERS ("alice:secret,bob:secret"; a password
#    may contain ":" but not ","), adding the missing ones and resetting the password of
#    existing ones, so a restart with the same volume is harmless. IMAPD_NOTIFY_SOCKET adds
#    --notify-socket. Then exec: the server is PID 1 and handles SIGTERM (docker stop).
#  - any other imapd subcommand (notifyd, user, healthcheck, ...): exec imapd with it.
#  - TEE_STDOUT=FILE (any imapd command): imapd's standard output is printed as usual and
#    also appended to FILE (e.g. notifyd's events, for a container sharing the volume).
#  - a program on PATH (sh, python, ...): exec it.
# IMAPD_USERS is removed from the environment imapd sees: imapd reads IMAPD_* variables as
# configuration options (imapd/config.py) and refuses unknown ones.
set -euo pipefail
umask 077  # imapd sets it too; anything this script creates stays private as well

if [ "$#" -eq 0 ]; then
  set -- serve
fi
if [ "${1#-}" = "$1" ] && command -v "$1" >/dev/null 2>&1; then
  exec "$@"
fi

seed_users=${IMAPD_USERS:-}
unset IMAPD_USERS
data_dir=${IMAPD_DATA_DIR:-/data}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --data-dir) data_dir=${args[i + 1]:-$data_dir} ;;
    --data-dir=*) data_dir=${args[i]#--data-dir=} ;;
  esac
done

if [ "$1" = serve ]; then
  if [ -n "$seed_users" ]; then
    existing=" $(imapd user list --data-dir "$data_dir" | sed 's/ (admin)$//' | tr '\n' ' ') "
    IFS=',' read -r -a entries <<<"$seed_users"
    for entry in "${entries[@]}"; do
      entry=${entry#"${entry%%[![:space:]]*}"}   # trim surrounding blanks
      entry=${entry%"${entry##*[![:space:]]}"}
      [ -n "$entry" ] || continue
      name=${entry%%:*}
      password=${entry#*:}
      if [ "$name" = "$entry" ] || [ -z "$name" ] || [ -z "$password" ]; then
        echo "imapd-entrypoint: IMAPD_USERS entry without NAME:PASSWORD skipped" >&2
        continue
      fi
      if [[ $existing == *" $name "* ]]; then
        # On standard input, not in argv: other processes' `ps` would show it.
        printf '%s\n' "$password" |
          imapd user passwd "$name" --password - --data-dir "$data_dir" >/dev/null
      else
        printf '%s\n' "$password" | imapd user add "$name" --password - --data-dir "$data_dir"
      fi
    done
  fi
  if [ -n "${IMAPD_NOTIFY_SOCKET:-}" ] && [[ " $* " != *" --notify-socket"* ]]; then
    set -- "$@" --notify-socket "$IMAPD_NOTIFY_SOCKET"
  fi
fi

if [ -n "${TEE_STDOUT:-}" ]; then
  # imapd stays PID 1 (exec); tee, its child, prints and appends what imapd writes.
  exec imapd "$@" > >(exec tee -a "$TEE_STDOUT")
fi
exec imapd "$@"
