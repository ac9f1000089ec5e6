# Sourced by the scripts: makes sure the local PostgreSQL and Redis answer,
# starting them if they are installed and stopped.

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.2; done
  fi
  echo "PostgreSQL is not running on 127.0.0.1:5432 and could not be started." >&2
  echo "Install it (Debian: apt-get install postgresql) with trust or password 'postgres' for user postgres." >&2
  return 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.2; done
  fi
  echo "Redis is not running on 127.0.0.1:6379 and could not be started." >&2
  echo "Install it (Debian: apt-get install redis-server)." >&2
  return 1
}
