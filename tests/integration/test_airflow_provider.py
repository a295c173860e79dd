"""The Airflow provider's tests (tests/airflow_provider/), run inside .venv-airflow.

Apache Airflow lives in its own environment (scripts/airflow_env.sh builds it; make test
runs that script first) so that its dependencies never move the project's. This test runs
that environment's pytest on tests/airflow_provider and passes when those tests pass; it skips,
saying why, when the environment has not been built.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
PYTHON = ROOT / ".venv-airflow" / "bin" / "python"


@pytest.mark.timeout(600)
def test_the_airflow_provider_tests_pass_inside_airflow() -> None:
    if not PYTHON.exists() or not (ROOT / ".venv-airflow" / ".installed").exists():
        pytest.skip(
            "no .venv-airflow: run `sh scripts/airflow_env.sh` (make test does) to build it; "
            "its log is .venv-airflow.log"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "AIRFLOW"))}

    done = subprocess.run(
        [str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/airflow_provider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )

    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
