"""Result shares: Shamir reconstruction at 0, consistency checks, and the wire format."""

from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction

import pytest

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.results.shares import OutputShare, PartyShares, combine

P = 2**127 - 1  # a Mersenne prime


def _poly_at(coeffs: list[int], x: int, p: int) -> int:
    return sum(c * pow(x, k, p) for k, c in enumerate(coeffs)) % p


def make_shares(
    outputs: dict[str, tuple[int, str, int, int]],
    *,
    n: int = 5,
    t: int = 2,
    job_id: str = "job-1",
    p: int = P,
    seed: int = 7,
) -> list[PartyShares]:
    """Share each output (secret, kind, frac_bits, decimals) with a random degree-t polynomial."""
    rng = random.Random(seed)
    polys = {
        name: [secret % p] + [rng.randrange(p) for _ in range(t)]
        for name, (secret, *_) in outputs.items()
    }
    return [
        PartyShares(
            job_id=job_id,
            x=x,
            modulus=p,
            threshold=t,
            outputs=tuple(
                OutputShare(name, _poly_at(polys[name], x, p), kind, frac_bits, decimals)
                for name, (_, kind, frac_bits, decimals) in outputs.items()
            ),
        )
        for x in range(1, n + 1)
    ]


def test_combine_reconstructs_an_integer():
    parts = make_shares({"count": (42, "int", 0, 0)})

    assert combine(parts) == {"count": Fraction(42)}


def test_combine_reconstructs_a_negative_integer():
    parts = make_shares({"sum": (-1234567, "int", 0, 0)})

    assert combine(parts) == {"sum": Fraction(-1234567)}


def test_combine_reconstructs_fixed_point_exactly():
    # 3.25 with 16 fractional bits is the field element 3.25 * 2**16.
    parts = make_shares({"mean": (13 * 2**14, "fixed", 16, 0)})

    assert combine(parts) == {"mean": Fraction(13, 4)}


def test_combine_reconstructs_a_negative_fixed_point_value():
    parts = make_shares({"mean": (-(2**15), "fixed", 16, 0)})

    assert combine(parts) == {"mean": Fraction(-1, 2)}


def test_combine_undoes_the_decimal_scaling():
    parts = make_shares({"sum": (12345, "int", 0, 2)})

    assert combine(parts) == {"sum": Fraction(12345, 100)}


def test_combine_applies_both_frac_bits_and_decimals():
    parts = make_shares({"mean": (3 * 2**8, "fixed", 8, 1)})

    assert combine(parts) == {"mean": Fraction(3, 10)}


def test_combine_returns_every_output_by_name():
    parts = make_shares({"sum": (500, "int", 0, 0), "count": (7, "int", 0, 0)})

    assert combine(parts) == {"sum": Fraction(500), "count": Fraction(7)}


def test_combine_with_only_t_plus_one_shares_works():
    parts = make_shares({"sum": (99, "int", 0, 0)}, n=5, t=2)

    assert combine([parts[4], parts[1], parts[2]]) == {"sum": Fraction(99)}


def test_combine_with_threshold_zero_reads_a_constant_polynomial():
    parts = make_shares({"sum": (5, "int", 0, 0)}, n=1, t=0)

    assert combine(parts) == {"sum": Fraction(5)}


def test_combine_detects_a_corrupted_share_when_shares_are_redundant():
    parts = make_shares({"sum": (99, "int", 0, 0)}, n=5, t=2)
    bad = parts[3].outputs[0]
    parts[3] = replace(parts[3], outputs=(replace(bad, share=(bad.share + 1) % P),))

    with pytest.raises(CryptoError, match="inconsistent"):
        combine(parts)


def test_combine_detects_a_corrupted_share_among_the_first_t_plus_one():
    parts = make_shares({"sum": (99, "int", 0, 0)}, n=4, t=1)
    bad = parts[0].outputs[0]
    parts[0] = replace(parts[0], outputs=(replace(bad, share=(bad.share + 1) % P),))

    with pytest.raises(CryptoError):
        combine(parts)


def test_combine_refuses_shares_of_different_jobs():
    parts = make_shares({"sum": (1, "int", 0, 0)}, n=3, t=1)
    parts[2] = replace(parts[2], job_id="job-2")

    with pytest.raises(CryptoError, match="different jobs"):
        combine(parts)


def test_combine_refuses_shares_with_different_moduli():
    parts = make_shares({"sum": (1, "int", 0, 0)}, n=3, t=1)
    parts[1] = replace(parts[1], modulus=2**61 - 1)

    with pytest.raises(CryptoError):
        combine(parts)


def test_combine_refuses_duplicate_party_index():
    parts = make_shares({"sum": (1, "int", 0, 0)}, n=3, t=1)

    with pytest.raises(CryptoError, match="same party index"):
        combine([parts[0], parts[1], parts[1]])


def test_combine_refuses_too_few_shares():
    parts = make_shares({"sum": (1, "int", 0, 0)}, n=5, t=2)

    with pytest.raises(CryptoError, match="need 3"):
        combine(parts[:2])


def test_combine_refuses_no_shares():
    with pytest.raises(CryptoError):
        combine([])


def test_combine_refuses_parties_with_different_outputs():
    parts = make_shares({"sum": (1, "int", 0, 0), "count": (2, "int", 0, 0)}, n=3, t=1)
    parts[2] = replace(parts[2], outputs=parts[2].outputs[:1])

    with pytest.raises(CryptoError):
        combine(parts)


def test_party_shares_round_trip_through_bytes():
    original = make_shares({"mean": (-3, "fixed", 16, 2), "count": (10, "int", 0, 0)})[2]

    assert PartyShares.from_bytes(original.to_bytes()) == original


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b'{"job_id": "j", "x": 1, "modulus": 7, "threshold": 1}',
        b'{"job_id": "j", "x": 1, "modulus": 7, "threshold": 1, "outputs": [], "extra": 1}',
        b'{"job_id": "j", "x": 1, "modulus": 7, "threshold": 1, "outputs": [{"name": "s"}]}',
        b'{"job_id": "j", "x": 1, "modulus": 7, "threshold": 1, "outputs": ["s"]}',
    ],
    ids=[
        "not-json",
        "not-utf8",
        "no-outputs",
        "unknown-field",
        "incomplete-output",
        "output-not-object",
    ],
)
def test_from_bytes_refuses_malformed_data(data):
    with pytest.raises(CryptoError, match="malformed result share"):
        PartyShares.from_bytes(data)


@pytest.mark.parametrize("data", [b"null", b"42", b'"x"'])
def test_from_bytes_refuses_json_that_is_not_an_object(data):
    with pytest.raises(CryptoError):
        PartyShares.from_bytes(data)
