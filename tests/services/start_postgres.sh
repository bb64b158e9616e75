#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the `postgres`-marked tests.
#
#   URL=$(tests/services/start_postgres.sh)        # prints the URL as the last line on stdout
#   export KDBENCH_TEST_POSTGRES_URL="$URL"
#   tests/services/start_postgres.sh stop          # stops the cluster this script started last
#
# Installs nothing: it needs Debian's `postgresql` package (binaries under
# /usr/lib/postgresql/*/bin). The cluster lives in a fresh temp directory, listens only on
# 127.0.0.1 on a free port, uses password (scram) authentication, and runs as the `postgres`
# user when started as root (PostgreSQL refuses to run as root). Logs go to stderr.
set -euo pipefail

STATE=${KDBENCH_PG_STATE:-/tmp/kdbench-postgres.state}
PASSWORD=${KDBENCH_PG_PASSWORD:-kdbench}
DB=${KDBENCH_PG_DB:-kdbench_test}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "start_postgres.sh: no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)" >&2
  exit 1
fi

as_owner() {  # run a command as the cluster owner (postgres when we are root)
  if [[ $(id -u) -eq 0 ]]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

if [[ "${1:-}" == "stop" ]]; then
  [[ -f "$STATE" ]] || { echo "start_postgres.sh: nothing to stop ($STATE missing)" >&2; exit 0; }
  datadir=$(sed -n 1p "$STATE")
  as_owner "$bindir/pg_ctl" -D "$datadir" -m fast stop >&2 || true
  rm -rf "$(dirname "$datadir")" "$STATE"
  exit 0
fi

if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

root=$(mktemp -d /tmp/kdbench-pg.XXXXXX)
chmod 755 "$root"
datadir="$root/data"
pwfile="$root/pw"
printf '%s\n' "$PASSWORD" > "$pwfile"
if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$root"; fi

# A free TCP port on loopback, chosen by the kernel.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_owner "$bindir/initdb" -D "$datadir" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" \
  --encoding=UTF8 --no-locale >&2
as_owner "$bindir/pg_ctl" -D "$datadir" -l "$root/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root -c max_connections=100" start >&2
PGPASSWORD=$PASSWORD "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB" >&2
printf '%s\n%s\n' "$datadir" "$port" > "$STATE"

url="postgresql://postgres:${PASSWORD}@127.0.0.1:${port}/${DB}"
echo "start_postgres.sh: PostgreSQL on 127.0.0.1:$port, data in $datadir (stop: $0 stop)" >&2
echo "$url"
