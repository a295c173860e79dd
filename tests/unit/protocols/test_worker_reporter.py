"""The worker's status reports (protocols.worker.Reporter): at most one write per interval,
the held report written by the event loop when the interval is up, ``done`` and ``failed``
at once. The node reads these files for a job's progress and its connect timeout."""

from __future__ import annotations

import asyncio

from ensnif_mpc.jobs.worker_session import WorkerStatus
from protocols.worker import Reporter


def _phase(directory) -> str | None:
    status = WorkerStatus.read(directory)
    return status.phase if status else None


def test_reports_within_the_interval_are_held_and_the_last_one_wins(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 60.0

    report("starting", 0.0)
    report("connecting", 0.05)
    report("computing", 0.1)

    assert _phase(tmp_path) == "starting"  # the first is written, the rest held
    report("done", 1.0)
    assert _phase(tmp_path) == "done"


def test_failed_is_written_at_once(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 60.0
    report("starting", 0.0)
    report("failed", 0.0, "why")
    status = WorkerStatus.read(tmp_path)
    assert status is not None and (status.phase, status.message) == ("failed", "why")


def test_the_event_loop_writes_a_held_report_when_the_interval_is_up(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 0.05

    async def run() -> list[str | None]:
        report("starting", 0.0)
        report("connecting", 0.05)
        report("computing", 0.1, "step 1")
        seen = [_phase(tmp_path)]
        await asyncio.sleep(0.2)  # past the interval: the loop wrote the held report
        seen.append(_phase(tmp_path))
        return seen

    assert asyncio.run(run()) == ["starting", "computing"]
    status = WorkerStatus.read(tmp_path)
    assert status is not None and status.message == "step 1"


def test_a_report_after_the_interval_is_written_at_once(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 0.0
    for phase in ("starting", "connecting", "computing"):
        report(phase, 0.1)
        assert _phase(tmp_path) == phase
