#!/bin/sh
# Build .venv-airflow: Apache Airflow (pinned) plus this project (editable, with the airflow
# extra) and pytest, for the Airflow provider's tests (tests/airflow_provider/, run inside it by
# tests/integration/test_airflow_provider.py). make test runs this, as it runs ensure_postgres.sh.
#
# Airflow gets its own environment so that its many dependencies never move the project's
# .venv. Only PyPI is used: Airflow's constraint files live elsewhere, so the one pin is
# Airflow's version (3.1.8 resolves with the project's own requirements, SQLAlchemy 2 included;
# Airflow 2.10 does not: it requires SQLAlchemy < 2).
# Idempotent: a stamp records what was installed; a second run with the same pins and the
# same pyproject.toml does nothing. Never fails make test: when it cannot build, it says why
# and the provider's tests skip, saying so too (the log is in .venv-airflow.log).
set -u

AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.1.8}"
PYTHON="${PYTHON:-python3}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-airflow"
LOG="$ROOT/.venv-airflow.log"
STAMP="$VENV/.installed"
WANT="apache-airflow==$AIRFLOW_VERSION $(cksum <"$ROOT/pyproject.toml" | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi

echo "airflow_env: building $VENV (apache-airflow==$AIRFLOW_VERSION; a few minutes)..."
start=$(date +%s)
: >"$LOG"
rm -f "$STAMP"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" >>"$LOG" 2>&1 || {
        echo "airflow_env: could not create $VENV (see $LOG): the Airflow tests will skip"
        exit 0
    }
fi
"$VENV/bin/pip" install --quiet --upgrade pip >>"$LOG" 2>&1
if "$VENV/bin/pip" install --quiet \
    "apache-airflow==$AIRFLOW_VERSION" \
    -e "$ROOT[airflow]" \
    "pytest>=8" "pytest-timeout>=2.3" "pytest-asyncio>=0.23" >>"$LOG" 2>&1; then
    echo "$WANT" >"$STAMP"
    echo "airflow_env: ready in $(( $(date +%s) - start )) s"
else
    echo "airflow_env: pip could not install apache-airflow==$AIRFLOW_VERSION with this" \
         "project (see $LOG): the Airflow tests will skip"
fi
exit 0
