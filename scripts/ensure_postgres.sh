#!/bin/sh
# Make PostgreSQL's server programs available for the state tests (make test runs this).
#
# The tests start their own throwaway server with initdb/pg_ctl (tests/integration/postgres.py);
# they only need the programs. When initdb is missing and we run as root with apt-get, install
# Debian's `postgresql` package quietly (apt-get update only if the package is unknown). The
# package's own cluster is not started. Never fails: when it cannot install, it says why and the
# PostgreSQL tests skip, saying so too.
set -u

found() {
    command -v initdb >/dev/null 2>&1 && return 0
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && return 0
    done
    return 1
}

found && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "ensure_postgres: initdb not found and not root: the PostgreSQL tests will skip" \
         "(install the postgresql package to run them)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_postgres: initdb not found and no apt-get: the PostgreSQL tests will skip"
    exit 0
fi

echo "ensure_postgres: installing Debian's postgresql package for the state tests..."
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# Install without starting the packaged cluster (policy-rc.d 101: no service starts),
# unless a policy is already in place.
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && ours=1
fi
log=/tmp/ensure_postgres.log
install_postgresql() {
    apt-get install -y -qq --no-install-recommends postgresql >>"$log" 2>&1
}
: > "$log"
if apt-cache show postgresql >/dev/null 2>&1 && install_postgresql; then
    status=0
elif apt-get update -qq >>"$log" 2>&1 && install_postgresql; then
    status=0
else
    status=1
fi
if [ "$ours" = 1 ]; then rm -f "$policy"; fi

if [ "$status" = 0 ] && found; then
    echo "ensure_postgres: installed in $(( $(date +%s) - start )) s"
else
    echo "ensure_postgres: could not install postgresql (see $log):" \
         "the PostgreSQL tests will skip"
fi
exit 0
