"""The Airflow provider's tests run inside .venv-airflow (scripts/airflow_env.sh), where
Apache Airflow is installed; the main suite runs them there through
tests/integration/test_airflow_provider.py and does not collect this folder itself.

(The folder is not called ``airflow``: tests/ is on pytest's path, and a folder of that name
would pass for the ``airflow`` package where Airflow is not installed.)

Airflow reads its settings when it is first imported, so its home (a temporary directory
with a SQLite metadata database) is set here, before any test module imports it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

if importlib.util.find_spec("airflow") is None:  # the project's own .venv: not here
    collect_ignore_glob = ["*"]
else:
    HOME = Path(tempfile.mkdtemp(prefix="ensnif-airflow-home-"))
    (HOME / "dags").mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(HOME / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database, created by `airflow db migrate` in the temporary home."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
