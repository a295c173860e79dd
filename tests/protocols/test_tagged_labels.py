"""No exchange of the private joins sends a peer two messages under one MPyC label.

MPyC 0.11 keys its receive buffers by (peer, program-counter label). Every ``mpc.transfer``
and ``mpc.input`` is an MPyC coroutine that forks a fresh label when it is called, so
transfers issued back to back, or many at once without waiting, never share one. The probe
(tests/protocols/tagged_labels_probe.py) runs the aligned join with B's columns in many
chunks, the two-share conversion of the tagged route, the PRF route's point exchange and a
burst of 300 concurrent transfers (small and 200 kB) into a party that is busy while they
arrive, under a sender-side and a receiver-side collision detector; it then makes one
collision on purpose, which both detectors must report. Three real MPyC processes over TLS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROBE = Path(__file__).with_name("tagged_labels_probe.py")


def test_no_exchange_reuses_a_label_under_load_and_a_forced_reuse_is_caught(tmp_path):
    from bench.raw import run as run_raw

    parties = run_raw(tmp_path, str(PROBE), {"seed": 15}, 120).outputs["parties"]

    assert len(parties) == 3
    for report in parties:
        assert report["before"]["send_repeats"] == 0
        assert report["before"]["receive_collisions"] == 0
        assert report["before"]["sent"] > 50  # every party took part in many exchanges
        assert all(report["checks"].values()), report["checks"]
    assert parties[1]["checks"]["burst_in_order"]
    assert min(parties[0]["before"]["sent"], parties[2]["before"]["sent"]) > 150  # the burst
    assert {k: parties[0]["checks"][k] for k in ("aligned_matches", "into_mpc", "prf")} == {
        "aligned_matches": True,
        "into_mpc": True,
        "prf": True,
    }
    # The forced reuse: party 0's detector saw its repeat, party 1's the second payload.
    assert parties[0]["after"]["send_repeats"] == 1
    assert parties[1]["after"]["receive_collisions"] == 1
    assert parties[0]["after"]["receive_collisions"] == 0
    assert parties[1]["after"]["send_repeats"] == 0
    assert parties[2]["after"]["send_repeats"] == parties[2]["after"]["receive_collisions"] == 0
