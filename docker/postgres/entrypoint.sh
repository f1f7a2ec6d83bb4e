#!/bin/bash
# docker/postgres's entrypoint: on an empty $PGDATA, initdb with the superuser
# $POSTGRES_USER (password $POSTGRES_PASSWORD, scram-sha-256 over TCP from anywhere the
# container network reaches) and create the database $POSTGRES_DB; then exec postgres as the
# `postgres` system user, as PID 1 (setpriv execs, it does not fork).
set -euo pipefail
: "${POSTGRES_USER:=imapd}" "${POSTGRES_DB:=imapd}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres-entrypoint: POSTGRES_PASSWORD is required" >&2
  exit 2
fi
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  "${as_postgres[@]}" initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
    "${as_postgres[@]}" postgres --single -D "$PGDATA" -j postgres >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA with database $POSTGRES_DB" >&2
fi
unset POSTGRES_PASSWORD
exec "${as_postgres[@]}" postgres -D "$PGDATA" -c listen_addresses='*' "$@"
