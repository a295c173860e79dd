"""MPyC 0.11 keeps one receive buffer per (peer, program-counter label); a second message
under a label whose buffer already holds bytes would break ``data_received``. Each
``mpc.transfer`` is an MPyC coroutine that advances the caller's counter and runs under a
fresh label, so one party may send the same peer many transfers in a row (as the joins'
seed, tag and pseudonym exchanges do) even when they all arrive before the peer asks.
Three real MPyC processes on loopback, the receiver busy while the sender sends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.protocols.harness import free_ports

pytestmark = pytest.mark.slow

PROBE = Path(__file__).with_name("transfer_probe.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rounds", [2, 300])
def test_consecutive_transfers_to_a_busy_peer_get_distinct_buffers_and_arrive_in_order(
    tmp_path, rounds
):
    ports = free_ports(3)
    peers = [a for p in ports for a in ("-P", f"127.0.0.1:{p}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(PROBE_ROUNDS=str(rounds), PYTHONPATH=str(ROOT))
    procs = []
    for i in range(3):
        with (tmp_path / f"{i}.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(PROBE), "-I", str(i), *peers],
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            )
    try:
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    outputs = [(tmp_path / f"{i}.out").read_text(errors="replace") for i in range(3)]
    assert codes == [0, 0, 0], outputs
    lines = dict(line.split(" ", 1) for line in outputs[1].splitlines() if " " in line)
    assert int(lines["buffered"]) >= rounds  # every message waited under its own label
    assert lines["received"] == " ".join(f"m{i}" for i in range(rounds))
