"""A party's share of an artifact: an output kept secret-shared at the parties for a later job.

The worker writes one :class:`ArtifactShare` per exported value (``Program.export_shares``)
into the job's directory; the node keeps it in its artifact store
(``party_node/artifacts.py``) and hands it back to the worker of a later job that lists the
artifact (``JobSpec.artifacts``). Nothing here is opened: each record is one party's Shamir
shares (points at x = party index + 1) of a secure array, with what a later job needs to
use them: the secure type and field they live in, the session's party order and
threshold (another order would put the points at other x), and the data owners whose data
went in (their policies decide who may use the artifact).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ensnif_mpc.errors import InvalidArgument, InvalidJobSpec

KINDS = frozenset({"int", "fixed"})


def artifact_id(job_id: str, name: str) -> str:
    """The consortium-wide id of the artifact ``name`` produced by job ``job_id``."""
    return f"{job_id}/{name}"


@dataclass(frozen=True)
class ArtifactShare:
    artifact_id: str
    name: str
    job_id: str  # the producing job
    protocol: str
    x: int  # this party's evaluation point: MPC party index + 1
    threshold: int
    parties: tuple[str, ...]  # the producing session's members, in party order
    owners: tuple[str, ...]  # the data owners whose data went in
    kind: str  # "int" (secure integers) | "fixed" (secure fixed point)
    bit_length: int
    frac_bits: int
    modulus: int
    shape: tuple[int, ...]
    shares: tuple[int, ...] = field(repr=False)  # row-major, one per element
    created_at: str = ""  # set by the node when it stores the share

    def __post_init__(self) -> None:
        count = 1
        for n in self.shape:
            count *= n
        if self.kind not in KINDS or count != len(self.shares) or not self.parties:
            raise InvalidArgument(f"artifact share {self.artifact_id!r} is malformed")

    @property
    def party_index(self) -> int:
        return self.x - 1

    def metadata(self) -> dict[str, Any]:
        """Everything but the shares (what a listing shows, and the coordinator may see)."""
        out = asdict(self)
        del out["shares"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> ArtifactShare:
        try:
            values = dict(raw)
            for key in ("parties", "owners", "shape", "shares"):
                values[key] = tuple(values[key])
            return ArtifactShare(**values)
        except (TypeError, KeyError) as exc:
            raise InvalidArgument(f"artifact share: not a valid record ({exc})") from exc


def check_listed(artifacts_in: Sequence[str], listed: Sequence[str], protocol: str) -> None:
    """A job lists exactly as many artifacts as its protocol reads (by name, in order).

    One check, both sides: the coordinator at submission (ensnif_mpc.jobs.checks) and
    every node at Propose (party_node/node.py)."""
    if len(listed) != len(artifacts_in):
        wants = ", ".join(artifacts_in) or "none"
        raise InvalidJobSpec(
            f"artifacts: protocol {protocol!r} reads {len(artifacts_in)} artifact(s) ({wants}); "
            f"the job lists {len(listed)}"
        )
    for n, (want, given) in enumerate(zip(artifacts_in, listed, strict=True)):
        if given.partition("/")[2] != want:
            raise InvalidJobSpec(f"artifacts[{n}]: protocol {protocol!r} reads {want!r} here")
