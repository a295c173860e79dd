"""Outputs opened to one named party, and artifacts kept as shares, with real workers.

The SCALE-MAMBA ``restart`` ports reveal a product or a sum to MPC party 1 only and keep
[1, 2, 3, 4] secret-shared: three worker processes, then each recipient opens what it can
with its own key. Checked against the same computation in the clear, and that the analyst
and the other parties can open nothing of it (and that nothing is opened inside MPC).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.jobs.worker_session import RESULT_FILE
from ensnif_mpc.results import envelope
from ensnif_mpc.security import sealing
from tests.protocols.harness import run_parties

pytestmark = pytest.mark.slow

RNG = np.random.default_rng(12)


def _owners() -> tuple[np.ndarray, np.ndarray]:
    return RNG.integers(0, 500, 3), RNG.integers(0, 500, 2)


@pytest.mark.parametrize(
    ("protocol", "output", "clear"),
    [("restart", "product", lambda a, b: a * b), ("restart_1", "sum", lambda a, b: a + b)],
)
def test_the_result_opens_for_party_one_only(tmp_path: Path, monkeypatch, protocol, output, clear):
    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")
    a, b = _owners()

    run = run_parties(tmp_path, protocol, [a, b, None], lower=0, upper=500)

    assert run.party_outputs == {1: {output: Fraction(int(clear(a.sum(), b.sum())))}}
    assert run.outputs == {}  # the analyst's part carries no output
    for d in run.dirs:
        parts = envelope.unpack((d / RESULT_FILE).read_bytes())
        assert set(parts) == {envelope.ANALYST, envelope.member("party1")}
        # Party 1's part is sealed to party 1: the analyst's key does not open it.
        assert run.consortium is not None
        aad = envelope.associated("job1", envelope.member("party1"))
        with pytest.raises(CryptoError):
            sealing.unseal(run.consortium.analyst_key_pem, parts[envelope.member("party1")], aad)
        with pytest.raises(CryptoError):
            sealing.unseal(run.consortium.party_key_pems[0], parts[envelope.member("party1")], aad)
        assert not (d / "openings.log").exists()  # no party opened anything in MPC


def test_an_exported_vector_stays_shares_and_a_later_job_reads_it_back(tmp_path: Path) -> None:
    a, b = _owners()

    first = run_parties(tmp_path, "restart", [a, b, None], lower=0, upper=500, job_id="one")
    second = run_parties(
        tmp_path,
        "restart_2",
        [a, b, None],
        lower=0,
        upper=500,
        job_id="two",
        artifacts=first.kept,
    )

    # Each party kept its own, different shares of [1, 2, 3, 4]; together they open to it.
    shares = [tuple(k[0]["shares"]) for k in first.kept]
    assert len(set(shares)) == 3 and all(k[0]["artifact_id"] == "one/inp" for k in first.kept)
    assert first.artifacts == {f"inp[{i}]": Fraction(i + 1) for i in range(4)}
    restored = {f"inp[{i}]": Fraction(i + 1) for i in range(4)}
    assert second.party_outputs == {1: {"product": Fraction(int(a.sum() * b.sum())), **restored}}


def test_a_fixed_point_vector_round_trips_through_an_artifact(tmp_path: Path) -> None:
    """What a model keeps: secure fixed-point numbers, negatives included, exported by one
    job and imported by the next, unchanged (the shares are the same field elements)."""
    a = RNG.integers(-5000, 5000, 7) / 100
    b = RNG.integers(-5000, 5000, 4) / 100
    owners = [a, b, None]
    common = {"decimals": 2, "lower": -50.0, "upper": 50.0}

    first = run_parties(tmp_path, "stash_sum", owners, job_id="w1", **common)
    second = run_parties(tmp_path, "stash_add", owners, job_id="w2", artifacts=first.kept, **common)

    frac = first.kept[0][0]["frac_bits"]
    assert first.kept[0][0]["kind"] == "fixed" and first.kept[0][0]["shape"] == [2]
    assert first.outputs == {} and first.party_outputs == {}  # nothing opened by anyone
    kept = [first.artifacts["totals[0]"], first.artifacts["totals[1]"]]
    assert all(
        abs(k - Fraction(str(round(s, 2)))) <= Fraction(1, 2**frac)
        for k, s in zip(kept, (a.sum(), b.sum()), strict=True)
    )
    # The later job adds its own (identical) sums to exactly the numbers kept.
    assert [second.outputs["total[0]"], second.outputs["total[1]"]] == [2 * k for k in kept]
    assert second.outputs["grand_total"] == 2 * sum(kept)


def test_a_local_protocol_runs_at_its_owner_alone_and_delivers_one_record(tmp_path: Path):
    """Backend ``local``: one worker, no MPC peers; the record holds the values
    themselves (scheme "single") and combines to the plaintext count and sum."""
    x = RNG.integers(-5000, 5000, 30) / 100

    run = run_parties(tmp_path, "local_sum", [x], decimals=2, lower=-50.0, upper=50.0)

    (record,) = run.parts
    assert (record.scheme, record.x, record.threshold) == ("single", 1, 0)
    cents = sum(round(v * 100) for v in x)
    assert run.outputs == {"count": Fraction(30), "sum": Fraction(cents, 100)}
    assert run.statuses[0].bytes_sent == 0  # nothing went to any peer


def test_vectorize_gives_different_outputs_to_different_parties(tmp_path: Path) -> None:
    """SCALE-MAMBA's vectorize: c = a·b to party 1, d = a + b to party 2, f to the analyst."""
    b = RNG.integers(0, 100, 6)
    a = 2 * np.arange(6)

    run = run_parties(tmp_path, "vectorize", [b, None, None], lower=0, upper=100)

    assert run.party_outputs == {
        1: {f"c[{i}]": Fraction(int(v)) for i, v in enumerate(a * b)},
        2: {f"d[{i}]": Fraction(int(v)) for i, v in enumerate(a + b)},
    }
    assert run.outputs == {f"f[{i}]": Fraction(int(v)) for i, v in enumerate((a + b) * b)}
