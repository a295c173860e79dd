"""Result shares: what each party's worker hands the analyst, and how the analyst combines them.

No party opens a job's output. Each worker re-randomizes the output sharing,
seals its own Shamir share (a point ``(x, y)`` of a degree-t polynomial over the
job's prime field) to the analyst, and the analyst interpolates at 0. With all n
shares in hand the analyst also checks that they lie on one degree-t polynomial,
so a corrupted or mixed-up share is detected rather than silently used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction

from ensnif_mpc.errors import CryptoError


@dataclass(frozen=True)
class OutputShare:
    name: str
    share: int
    # "int": a secure integer; "fixed": a secure fixed-point number with frac_bits.
    kind: str
    frac_bits: int = 0
    # The value was computed on integers scaled by 10**decimals.
    decimals: int = 0
    # The field of this output when it differs from the job's (0: PartyShares.modulus).
    modulus: int = 0
    # Standard deviation of the DP noise in this output, on its integer grid (0: exact).
    noise_sd: float = 0.0


@dataclass(frozen=True)
class PartyShares:
    job_id: str
    x: int  # evaluation point: MPyC party index + 1
    modulus: int
    threshold: int
    outputs: tuple[OutputShare, ...]
    # How the recipient combines the parties' records (the backend's seam): "shamir"
    # (every MPC party's point of a degree-t polynomial, interpolated at 0) or "single"
    # (one record that holds the values themselves: a ``local`` protocol's only party).
    scheme: str = "shamir"

    def to_bytes(self) -> bytes:
        body = asdict(self)
        return json.dumps(body, sort_keys=True).encode()

    @staticmethod
    def from_bytes(data: bytes) -> PartyShares:
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise TypeError("not a JSON object")
            outs = tuple(OutputShare(**o) for o in raw.pop("outputs"))
            return PartyShares(outputs=outs, **raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CryptoError(f"malformed result share: {exc}") from exc


def _lagrange_at(points: list[tuple[int, int]], at: int, p: int) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (at - xj) % p
                den = den * (xi - xj) % p
        total = (total + yi * num * pow(den, -1, p)) % p
    return total


def _signed(v: int, p: int) -> int:
    return v - p if v > p // 2 else v


SCHEMES = frozenset({"shamir", "single"})


def combine(parts: list[PartyShares]) -> dict[str, Fraction]:
    """Reconstruct every output exactly (as a fraction) from the parties' records, as
    their ``scheme`` says."""
    if not parts:
        raise CryptoError("no result shares to combine")
    first = parts[0]
    if any(s.scheme != first.scheme for s in parts) or first.scheme not in SCHEMES:
        raise CryptoError("result shares disagree on how they combine, or name no known way")
    if first.scheme == "single":
        if len(parts) != 1:
            raise CryptoError(f"a single-party result has {len(parts)} records")
        return {
            o.name: Fraction(o.share, (1 << o.frac_bits) * 10**o.decimals) for o in first.outputs
        }
    t, p = first.threshold, first.modulus
    if any(s.job_id != first.job_id or s.modulus != p or s.threshold != t for s in parts):
        raise CryptoError("result shares come from different jobs or sessions")
    if len({s.x for s in parts}) != len(parts):
        raise CryptoError("two result shares claim the same party index")
    if len(parts) < t + 1:
        raise CryptoError(f"need {t + 1} result shares to reconstruct, have {len(parts)}")
    layout = [(o.name, o.kind, o.frac_bits, o.decimals, o.modulus) for o in first.outputs]
    if any(
        [(o.name, o.kind, o.frac_bits, o.decimals, o.modulus) for o in s.outputs] != layout
        for s in parts
    ):
        raise CryptoError("result shares disagree on the outputs they carry")
    names = [name for name, *_ in layout]
    values: dict[str, Fraction] = {}
    for k, name in enumerate(names):
        p = first.outputs[k].modulus or first.modulus
        pts = [(s.x, s.outputs[k].share % p) for s in parts]
        base = pts[: t + 1]
        for x, y in pts[t + 1 :]:
            if _lagrange_at(base, x, p) != y:
                raise CryptoError(f"result shares of {name!r} are inconsistent (party {x - 1})")
        raw = _signed(_lagrange_at(base, 0, p), p)
        meta = first.outputs[k]
        values[name] = Fraction(raw, (1 << meta.frac_bits) * 10**meta.decimals)
    return values
