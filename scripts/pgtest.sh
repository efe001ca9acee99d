#!/usr/bin/env bash
# Throwaway PostgreSQL server on a loopback port for the test suite.
#   scripts/pgtest.sh start DIR   -> initdb + start in DIR, prints a DATABASE_URL
#   scripts/pgtest.sh stop DIR    -> stop it and remove DIR
#   scripts/pgtest.sh halt DIR    -> stop the server (fast shutdown: connections are cut), keeping its data
#   scripts/pgtest.sh resume DIR  -> start it again, on the same port, after halt (an outage, for the deploy test)
set -euo pipefail
cmd=${1:?start|stop}; dir=$(realpath -m "${2:?data directory}")

find_bin() {
  for d in $(command -v initdb >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v initdb)")") \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

bin=$(find_bin) || {
  echo "PostgreSQL binaries not found; installing Debian's postgresql package" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bin=$(find_bin)
}

# initdb and postgres refuse to run as root: run them as an unprivileged user.
as_user() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$pguser" -- "$@"); else "$@"; fi; }
pguser=$(id -un)
if [ "$(id -u)" = 0 ]; then
  pguser=postgres
  id "$pguser" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pguser"
fi

# The server runs as $pguser, who may not be able to reach DIR (a checkout under a root-only directory): the
# cluster then lives in a directory of its own under /tmp, whose path DIR/cluster keeps for `stop`.
cluster_of() {
  if [ "$(id -u)" = 0 ] && ! runuser -u "$pguser" -- test -x "$1" 2>/dev/null; then
    if [ -f "$1/cluster" ]; then cat "$1/cluster"; else mktemp -d /tmp/enreach-pgtest.XXXXXX; fi
  else
    echo "$1"
  fi
}

case "$cmd" in
start)
  rm -rf "$dir"; mkdir -p "$dir"
  cluster=$(cluster_of "$dir")
  [ "$cluster" != "$dir" ] && echo "$cluster" >"$dir/cluster"
  dir=$cluster
  chown "$pguser" "$dir"; chmod 700 "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_user "$bin/initdb" -D "$dir/data" -U enreach --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  echo "$options" >"$dir/options"
  as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$options" >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://enreach@127.0.0.1:$port/postgres"
  ;;
halt|resume)
  cluster=$dir
  [ -f "$dir/cluster" ] && cluster=$(cat "$dir/cluster")
  if [ "$cmd" = halt ]; then
    as_user "$bin/pg_ctl" -D "$cluster/data" -m fast -w -t 60 stop >/dev/null
  else
    as_user "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 start -o "$(cat "$cluster/options")" >/dev/null \
      || { cat "$cluster/server.log" >&2; exit 1; }
  fi
  ;;
stop)
  cluster=$dir
  [ -f "$dir/cluster" ] && cluster=$(cat "$dir/cluster")
  [ -d "$cluster/data" ] && as_user "$bin/pg_ctl" -D "$cluster/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$cluster" "$dir"
  ;;
*) echo "usage: $0 start|stop|halt|resume DIR" >&2; exit 2 ;;
esac
