"""The worker as the node sees it: status.json phases, traffic, and what a lost peer does to it.

MPyC itself waits forever for a peer that never connects or vanishes; the worker's
own peer watch turns a vanished peer into a prompt ``failed``/``peer_lost`` exit,
while a peer that never starts is left to the node's watchdog.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.jobs.worker_session import EXIT_FAILED, EXIT_OK, RESULT_FILE, WorkerSession
from tests.helpers import wait_for
from tests.protocols.harness import (
    PHASES,
    STALLED_WORKER,
    Workers,
    draw,
    make_consortium,
    run_parties,
    status_of,
    write_sessions,
)

LOWER, UPPER, DECIMALS = -20.0, 40.0, 1


def _sessions(tmp_path: Path, protocol: str, rows: tuple[int, ...]) -> list[Path]:
    rng = np.random.default_rng(7)
    values = [draw(rng, r, LOWER, UPPER, DECIMALS) for r in rows]
    return write_sessions(
        tmp_path,
        make_consortium(tmp_path, len(values)),
        job_id="faults",
        protocol=protocol,
        owner_values=values,
        params={},
        decimals=DECIMALS,
        lower=LOWER,
        upper=UPPER,
    )


@contextlib.contextmanager
def dials_to(address: str) -> Iterator[list[float]]:
    """Stand in a missing peer's place and record every connection made to it, dropping
    each at once: the dialler sees a failed attempt, as with nobody there, and retries."""
    host, port = address.rsplit(":", 1)
    dials: list[float] = []
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen()
        listener.settimeout(0.1)
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.close()
                dials.append(time.monotonic())

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield dials
        finally:
            done.set()
            thread.join(timeout=5)


@pytest.mark.slow
def test_three_party_worker_reports_phases_in_order_and_ends_done_with_bytes_sent(tmp_path):
    rng = np.random.default_rng(3)
    values = [draw(rng, r, LOWER, UPPER, DECIMALS) for r in (400, 900, 1600)]

    run = run_parties(tmp_path, "sum", values, decimals=DECIMALS, lower=LOWER, upper=UPPER)

    assert run.exit_codes == {0: EXIT_OK, 1: EXIT_OK, 2: EXIT_OK}
    for index, status in enumerate(run.statuses):
        assert (status.phase, status.fraction, status.reason_code) == ("done", 1.0, "")
        assert status.bytes_sent > 0, f"party {index} reports no MPC traffic"
    for index, seen in run.phases.items():
        # Polling may miss a short phase, but never sees one out of order.
        assert seen == sorted(seen, key=PHASES.index), f"party {index}: {seen}"
        assert seen[-1] == "done"


def test_single_party_worker_sends_nothing(tmp_path):
    values = [draw(np.random.default_rng(4), 300, LOWER, UPPER, DECIMALS)]

    run = run_parties(tmp_path, "count", values, decimals=DECIMALS, lower=LOWER, upper=UPPER)

    assert run.statuses[0].phase == "done"
    assert run.statuses[0].bytes_sent == 0


@pytest.mark.slow
def test_worker_whose_peers_never_start_keeps_waiting_in_connecting(tmp_path):
    dirs = _sessions(tmp_path, "count", (200, 300, 400))
    party1 = WorkerSession.read(dirs[0]).addresses[1]  # party 0 dials party 1 first

    with Workers(dirs) as workers, dials_to(party1) as dials:
        workers.start(0)  # parties 1 and 2 never start
        workers.wait_until(
            lambda w: w.phases[0][-1:] == ["connecting"], timeout=20, what="phase connecting"
        )
        # Dialling party 1 again after failed attempts: it has not given up.
        wait_for(lambda: len(dials) >= 3, 20, lambda: f"three dials to party 1 (saw {len(dials)})")

        # MPyC retries forever; ending such a job is the node watchdog's business.
        assert workers.running(0)
        assert status_of(dirs[0]).phase == "connecting"
    assert not (dirs[0] / RESULT_FILE).exists()


@pytest.mark.slow
def test_killing_a_party_mid_job_fails_the_survivors_with_peer_lost(tmp_path):
    dirs = _sessions(tmp_path, "mean", (500, 800, 1200))

    with Workers(dirs) as workers:
        workers.start(0)
        workers.start(1)
        # Party 2 connects like a real worker, then never feeds its input: the survivors
        # cannot finish without it, so the kill always lands mid-job.
        workers.start(2, STALLED_WORKER)
        workers.wait_until(
            lambda w: all(
                s is not None and s.phase in ("computing", "delivering")
                for s in map(status_of, dirs)
            ),
            timeout=30,
            what="all parties connected and computing",
        )
        # The survivors go as far as they can without party 2's input, to delivering, and
        # block there on its shares.
        workers.wait_until(
            lambda w: all(status_of(dirs[i]).phase == "delivering" for i in (0, 1)),
            timeout=30,
            what="the survivors delivering",
        )
        assert workers.running(0) and workers.running(1)

        workers.kill(2)
        killed_at = time.monotonic()
        codes = workers.wait([0, 1], timeout=10)
        elapsed = time.monotonic() - killed_at

    assert codes == {0: EXIT_FAILED, 1: EXIT_FAILED}
    assert elapsed < 10
    statuses = [status_of(d) for d in dirs[:2]]
    assert [(s.phase, s.reason_code) for s in statuses] == [("failed", "peer_lost")] * 2
    # The first survivor to notice names party 2; the other may instead name that survivor,
    # whose exit it can see first.
    assert any("party 2" in s.message for s in statuses), statuses
    assert not any((d / RESULT_FILE).exists() for d in dirs)


@pytest.mark.slow
def test_an_owner_whose_data_breaks_after_approval_ends_every_worker_with_its_reason(tmp_path):
    dirs = _sessions(tmp_path, "sum", (300, 400, 500))
    data = dirs[1] / "data.csv"
    lines = data.read_text().splitlines()
    lines[5] = "999999"  # outside the declared bounds: caught in the worker's own read
    data.write_text("\n".join(lines) + "\n")

    started = time.monotonic()
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=30)

    assert time.monotonic() - started < 30  # no worker waits forever for the failed one
    assert all(code != 0 for code in codes.values())
    failed = status_of(dirs[1])
    assert failed.reason_code == "data_out_of_schema"
    assert "line 6" in failed.message and "999999" not in failed.message
    assert {status_of(dirs[i]).reason_code for i in (0, 2)} == {"peer_lost"}
    assert not any((d / RESULT_FILE).exists() for d in dirs)


@pytest.mark.slow
def test_a_member_cannot_connect_in_another_members_place(tmp_path):
    """Party 2's operator runs a worker that claims index 0 with its own (valid, CA-bound)
    per-job certificate and dials party 1 (lower indices dial higher ones). MPyC alone
    would take it for party 0; the worker refuses it."""
    import json
    import shutil

    dirs = _sessions(tmp_path, "count", (100, 100, 100))
    impostor = dirs[2].with_name("impostor")
    shutil.copytree(dirs[2], impostor)
    cfg = impostor / ".config"
    (cfg / "party_2.crt").rename(cfg / "party_0.crt")
    (cfg / "party_2.key").rename(cfg / "party_0.key")
    session = json.loads((impostor / "session.json").read_text())
    session["index"] = 0
    (impostor / "session.json").write_text(json.dumps(session))

    with Workers([dirs[1], impostor]) as workers:
        workers.start_all()
        log = dirs[1] / "worker.log"
        wait_for(
            lambda: "refused an MPC connection" in (log.read_text() if log.exists() else ""),
            20,
            lambda: f"party 1 refusing the impostor\n{workers.diagnose()}",
            interval=0.1,
        )
        assert "claiming party 0 with certificate ['MPyC party 2']" in log.read_text()
        assert status_of(dirs[1]).phase == "connecting"  # still waiting for the real party 0
    assert not (dirs[1] / RESULT_FILE).exists()
