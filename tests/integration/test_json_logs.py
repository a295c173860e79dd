"""JSON logs carry the job id on every line of a job: the coordinator's driver, each node,
and each node's worker process (which takes the format from the node's environment).

The consortium runs in this process with ``ENSNIF_LOG_FORMAT=json`` set before it starts
(what ``--log-format json`` does in a daemon); the servers' lines are captured with the
daemons' own JSON handler, the workers' lines read from their ``worker.log``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest

from ensnif_mpc import logs
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.worker_session import LOG_FILE
from ensnif_mpc.sdk.client import state_name
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=200)]

SUM = {
    "protocol": "sum",
    "helpers": ["helper"],
    "privacy": {"exact": True},
    "inputs": [
        {"party": "grocery", "dataset": "orders", "column": "basket_total"},
        {"party": "logistics", "dataset": "deliveries", "column": "fee"},
    ],
}


@pytest.fixture(scope="module", autouse=True)
def _json_logs() -> Iterator[None]:
    """Set before the consortium starts, so its nodes hand the format to their workers."""
    old = os.environ.get(logs.ENV_FORMAT)
    os.environ[logs.ENV_FORMAT] = "json"
    yield
    if old is None:
        os.environ.pop(logs.ENV_FORMAT, None)
    else:
        os.environ[logs.ENV_FORMAT] = old


class Lines(logging.Handler):
    """The daemons' handler (JSON formatter, job id filter), keeping each line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logs.formatter("json"))
        self.addFilter(logs.JobIdFilter())
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def server_lines() -> Iterator[Lines]:
    root = logging.getLogger()
    handler, level = Lines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_line_of_a_job_carries_its_id(consortium: Consortium, server_lines: Lines) -> None:
    with consortium.client() as c:
        job = c.submit(jobspec.from_dict(SUM))
        final = c.wait(job.id, timeout_s=120)
    assert state_name(final) == "succeeded", final.reason

    about_job = [line for line in server_lines.lines if job.id in line["message"]]
    assert about_job, "no line about the job was logged"
    assert all(line.get("job_id") == job.id for line in about_job), [
        (line["logger"], line["message"]) for line in about_job if line.get("job_id") != job.id
    ]
    loggers = {line["logger"] for line in about_job}
    assert {"coordinator.scheduler", "party_node.supervisor"} <= loggers
    delivered = [line for line in about_job if line["message"].endswith(": delivered")]
    assert len(delivered) == 3  # one per node

    for name, running in consortium.nodes.items():
        path = running.node.cfg.state_dir / "jobs" / job.id / LOG_FILE
        lines = [json.loads(text) for text in path.read_text().splitlines()]
        assert lines, f"{name}'s worker logged nothing"
        assert all(line["job_id"] == job.id for line in lines)
        assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
        assert any(line["message"].startswith(f"job {job.id} done") for line in lines)
