# Bring up PostgreSQL and Redis for the tier 2 pass (RECIPES.md), the way a fresh CI machine
# needs: use the ones on 127.0.0.1 when they answer, start the machine's own when they are
# down, and install them with apt-get (as root) when they are missing. Sourced by bin/test;
# sets PG_BASE_URL (no database name) and REDIS_BASE_URL (no db number).
APT_GET=(apt-get -o DPkg::Lock::Timeout=600 -y -q)

apt_install() {
  [ "$(id -u)" = 0 ] || { echo "Cannot install $* without root." >&2; return 1; }
  echo "Installing $* with apt-get ..."
  DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" install "$@" >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" update >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" install "$@" >/dev/null; }
}

pg_answers() {  # host port
  python - "$1" "$2" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="postgres", dbname="postgres",
                connect_timeout=3).close()
PY
}

postgres_up() {
  PG_BASE_URL="postgres://postgres@127.0.0.1:5432"
  pg_answers 127.0.0.1 5432 && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] &&
     [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start \
      >/dev/null 2>&1 || true
    for _ in $(seq 50); do pg_answers 127.0.0.1 5432 && return 0; sleep 0.2; done
  fi
  # No usable server on 5432 (none, or one that wants a password): a private cluster of our
  # own with trust auth on loopback, in data/, on port 5433.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql || return 1
  # Outside the checkout: the postgres user must be able to reach it.
  local bindir pgdata="${TMPDIR:-/tmp}/appstrate-postgres" run_as=()
  bindir="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
  [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
  PG_BASE_URL="postgres://postgres@127.0.0.1:5433"
  pg_answers 127.0.0.1 5433 && return 0
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    mkdir -p "$pgdata"
    [ "$(id -u)" = 0 ] && chown postgres "$pgdata"
    "${run_as[@]}" "$bindir/initdb" -D "$pgdata" -U postgres -A trust >/dev/null
  fi
  "${run_as[@]}" "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-h 127.0.0.1 -p 5433 -k $pgdata" start >/dev/null
  pg_answers 127.0.0.1 5433
}

redis_up() {
  REDIS_BASE_URL="redis://127.0.0.1:6379"
  redis_answers() { python -c 'import redis; redis.Redis(port=6379, socket_timeout=2).ping()' 2>/dev/null; }
  redis_answers && return 0
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server || return 1
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
  for _ in $(seq 50); do redis_answers && return 0; sleep 0.1; done
  return 1
}

drop_test_databases() {  # token: drop the test databases whose names hold it (this run's)
  [ -n "${PG_BASE_URL:-}" ] || return 0
  python - "$PG_BASE_URL/postgres" "$1" <<'PY' || true
import sys, psycopg
from psycopg import sql
url, token = sys.argv[1], sys.argv[2]
with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
    names = [row[0] for row in conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%%' AND strpos(datname, %s) > 0",
        [token])]
    for name in names:
        # A thread a test left behind may still hold a session: pytest-django could not drop it.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
PY
}
