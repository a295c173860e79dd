"""``ensnif job status``'s MPC statistics, merged over the job's parties."""

from __future__ import annotations

import datetime as dt

from rich.console import Console

from ensnif_mpc.cli.mpc_stats import mpc_stats, mpc_stats_table
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb

T0 = "2026-01-01T10:00:00+00:00"


def job(state: int, updated: str, sent: dict[str, int]) -> pb.Job:
    return pb.Job(
        id="j1",
        state=state,  # type: ignore[arg-type]
        created_at=T0,
        updated_at=updated,
        parties=[
            pb.PartyProgress(
                party=p,
                state="succeeded",
                progress=pb.Progress(
                    bytes_sent=n, messages_sent=n // 10, rounds=n // 50, cpu_seconds=n / 1000
                ),
            )
            for p, n in sent.items()
        ],
    )


def test_an_ended_job_sums_its_parties_bytes_and_times_submission_to_end() -> None:
    ended = job(pb.JOB_STATE_SUCCEEDED, "2026-01-01T10:00:12.5+00:00", {"a": 300, "b": 100})
    stats = mpc_stats(ended)
    assert stats == {
        "bytes_sent_total": 400,
        "bytes_sent_by_party": {"a": 300, "b": 100},
        "messages_by_party": {"a": 30, "b": 10},
        "rounds_by_party": {"a": 6, "b": 2},
        "cpu_seconds_by_party": {"a": 0.3, "b": 0.1},
        "wall_seconds": 12.5,
        "ended": True,
    }
    table = mpc_stats_table(stats)
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "75%" in text and "25%" in text and "400" in text
    assert "6 (most)" in text and "0.40" in text  # rounds: the most of any party; CPU summed
    assert table.caption == "wall time 12.5 s (submission to end)"


def test_a_running_job_is_timed_until_now() -> None:
    running = job(pb.JOB_STATE_RUNNING, T0, {"a": 0})
    now = dt.datetime(2026, 1, 1, 10, 1, tzinfo=dt.UTC)
    assert mpc_stats(running, now=now)["wall_seconds"] == 60.0
    assert mpc_stats(running, now=now)["ended"] is False


def test_a_job_without_times_has_no_wall_time() -> None:
    assert mpc_stats(pb.Job(id="j2", state=pb.JOB_STATE_FAILED))["wall_seconds"] is None
