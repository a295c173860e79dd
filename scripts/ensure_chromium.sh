#!/bin/sh
# Make Debian's Chromium (and NSS's certutil) available for the browser tests of the web
# consoles (tests/e2e/test_console.py; make test runs this, as it runs ensure_postgres.sh).
#
# playwright (the dev extra) drives /usr/bin/chromium; `playwright install` is never used (it
# downloads browsers). certutil gives the test browser an NSS database that trusts the test
# consortium's CA. When either is missing and we run as root with apt-get, install Debian's
# `chromium` and `libnss3-tools` quietly (apt-get update only if the packages are unknown).
# Never fails: when it cannot install, it says why and the browser tests skip, saying so too.
set -u

found() {
    [ -x /usr/bin/chromium ] && command -v certutil >/dev/null 2>&1
}

found && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "ensure_chromium: /usr/bin/chromium or certutil missing and not root: the browser" \
         "tests will skip (install the chromium and libnss3-tools packages to run them)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: /usr/bin/chromium or certutil missing and no apt-get: the browser" \
         "tests will skip"
    exit 0
fi

echo "ensure_chromium: installing Debian's chromium and libnss3-tools for the browser tests..."
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=/tmp/ensure_chromium.log
install_chromium() {
    apt-get install -y -qq --no-install-recommends chromium libnss3-tools >>"$log" 2>&1
}
: > "$log"
if apt-cache show chromium libnss3-tools >/dev/null 2>&1 && install_chromium; then
    :
elif apt-get update -qq >>"$log" 2>&1 && install_chromium; then
    :
fi
if found; then
    echo "ensure_chromium: installed in $(( $(date +%s) - start )) s"
else
    echo "ensure_chromium: could not install chromium (see $log): the browser tests will skip"
fi
exit 0
