#!/bin/sh
# Make the namespace consortium's tools available (tests/netns; make test runs this).
#
# The tests create network namespaces, veths and a bridge with `ip` (iproute2), drop a
# member's MPC range with `iptables` inside its namespace, and shift a member's clock with
# libfaketime. When one is missing and we run as root with apt-get, install Debian's
# package quietly (apt-get update only if the package is unknown). Never fails: when it
# cannot install, it says why and the tests concerned skip, saying so too. Not root: the
# netns tests skip anyway (namespaces need root), so nothing is installed.
set -u

faketime_found() {
    for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
        [ -e "$lib" ] && return 0
    done
    return 1
}

missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
faketime_found || missing="$missing libfaketime"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "ensure_netns: not root: the netns tests will skip (namespaces need root)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_netns: missing$missing and no apt-get: the tests that need them will skip"
    exit 0
fi

echo "ensure_netns: installing$missing for the namespace tests..."
export DEBIAN_FRONTEND=noninteractive
log=/tmp/ensure_netns.log
: > "$log"
# shellcheck disable=SC2086  # the package names are words
if apt-cache show $missing >/dev/null 2>&1 \
    && apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
    status=0
elif apt-get update -qq >>"$log" 2>&1 \
    && apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
    status=0
else
    status=1
fi
if [ "$status" = 0 ]; then
    echo "ensure_netns: installed$missing"
else
    echo "ensure_netns: could not install$missing (see $log): the tests that need them will skip"
fi
exit 0
