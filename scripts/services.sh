# Sourced by the scripts: makes sure the local PostgreSQL and Redis answer,
# starting them if they are stopped and installing them (Debian packages,
# when run as root) if they are missing.

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  local fresh=""
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && apt_install postgresql; then fresh=1; fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    # The package may have started it already.
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    if [ -n "$fresh" ]; then
      # The services sign in over TCP as postgres with DB_PASSWORD (default postgres).
      su postgres -c "psql -qc \"ALTER USER postgres PASSWORD '${DB_PASSWORD:-postgres}'\""
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
  fi
  echo "PostgreSQL is not running on 127.0.0.1:5432 and could not be started." >&2
  echo "Install it (Debian: apt-get install postgresql) with trust or password 'postgres' for user postgres." >&2
  return 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server || true
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.2; done
  fi
  echo "Redis is not running on 127.0.0.1:6379 and could not be started." >&2
  echo "Install it (Debian: apt-get install redis-server)." >&2
  return 1
}

# Installs the Debian packages "$@" when run as root where apt-get exists;
# fails (installing nothing) otherwise.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  echo "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Creates the database $1 unless it exists.
ensure_database() {
  local name=$1
  if ! psql -h 127.0.0.1 -U "${DB_USERNAME:-postgres}" -d postgres -Atc \
      "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql -h 127.0.0.1 -U "${DB_USERNAME:-postgres}" -d postgres -qc "CREATE DATABASE $name"
    echo "created database $name"
  fi
}

# Prints a TCP port nothing listens on.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Makes sure the commands exist, installing Debian package $2 for $1 when run as root.
need_tool() {
  local tool=$1 package=$2
  command -v "$tool" >/dev/null 2>&1 && return 0
  apt_install "$package" && command -v "$tool" >/dev/null 2>&1 && return 0
  echo "$tool is missing: install it with 'apt-get install $package'." >&2
  return 1
}

# Waits up to ten seconds for $1 to answer 200.
wait_ready() {
  for _ in $(seq 1 100); do
    curl -fs "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not answer" >&2
  return 1
}

# Uses the platform if scripts/run has it up (every process ready: .run/ready),
# else starts it (scripts/run, log in .run/$1.log) and stops it when the
# calling script exits.
ensure_platform() {
  local log=.run/$1.log
  [ -e .run/ready ] && curl -fs http://127.0.0.1:8080/ready >/dev/null 2>&1 && return 0
  mkdir -p .run
  scripts/run >"$log" 2>&1 &
  platform_pid=$!
  trap 'scripts/run down >/dev/null; wait "$platform_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 3000); do
    [ -e .run/ready ] && return 0
    kill -0 "$platform_pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.2
  done
  echo "the platform did not become ready; see $log" >&2
  return 1
}

# Rate limits far above what a benchmark sends, for a platform that
# ensure_platform starts (the limiter still runs on every request; a platform
# already running keeps its own limits).
generous_rate_limits() {
  local class
  for class in BOOKING READ WRITE; do
    export "RATE_LIMIT_${class}_PER_MINUTE=100000000" "RATE_LIMIT_${class}_BURST=1000000"
  done
}
