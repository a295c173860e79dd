"""The worker's status reports (protocols.worker.Reporter): a new phase written at once (the
node acts on it: connect timeout or job timeout), updates within a phase at most once per
interval, the held one written by the event loop when the interval is up, ``done`` and
``failed`` at once."""

from __future__ import annotations

import asyncio

from ensnif_mpc.jobs.worker_session import WorkerStatus
from protocols.worker import Reporter


def _phase(directory) -> str | None:
    status = WorkerStatus.read(directory)
    return status.phase if status else None


def _status(directory) -> tuple[str, float] | None:
    status = WorkerStatus.read(directory)
    return (status.phase, status.fraction) if status else None


def test_every_new_phase_is_written_at_once(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 60.0
    for phase in ("starting", "connecting", "preparing", "computing", "delivering", "done"):
        report(phase, 0.5)
        assert _phase(tmp_path) == phase


def test_updates_within_a_phase_are_held_and_the_last_one_wins(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 60.0

    report("computing", 0.1)
    report("computing", 0.2)
    report("computing", 0.3)

    assert _status(tmp_path) == ("computing", 0.1)  # the first is written, the rest held
    report("delivering", 0.9)  # a new phase: at once, the held update dropped
    assert _status(tmp_path) == ("delivering", 0.9)


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

    async def run() -> list[tuple[str, float] | None]:
        report("computing", 0.1)
        report("computing", 0.2, "step 1")
        seen = [_status(tmp_path)]
        await asyncio.sleep(0.2)  # past the interval: the loop wrote the held report
        seen.append(_status(tmp_path))
        return seen

    assert asyncio.run(run()) == [("computing", 0.1), ("computing", 0.2)]
    status = WorkerStatus.read(tmp_path)
    assert status is not None and status.message == "step 1"


def test_a_report_after_the_interval_is_written_at_once(tmp_path):
    report = Reporter(tmp_path)
    report.MIN_INTERVAL_S = 0.0
    for fraction in (0.1, 0.2, 0.3):
        report("computing", fraction)
        assert _status(tmp_path) == ("computing", fraction)
