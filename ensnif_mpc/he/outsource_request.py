"""A job's conversion request, as the helper's worker leaves it for the owner's client.

The worker of a job that reads an outsourced dataset writes, in its job directory's
``outsourced/`` folder, ``request.json`` (what the owner needs to decide and to seal:
the job, the dataset, the outputs, the session's per-job MPC certificates with their
bindings) and ``batch.bin`` (the masked, flooded ciphertexts). The helper node serves them
to the owner (``OutsourceService.PendingConversions``, only to the dataset's owner) and
writes the owner's answer back: ``sealed.json`` (one sealed share per party) or
``refused.json``. The worker waits for the answer within the approval window
(``outsource.wait_for_owner``). Files, not memory: node and worker are separate
processes, and the node never holds a mask or a share it could open.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from ensnif_mpc.errors import InvalidArgument, PermissionDenied
from ensnif_mpc.he import outsource
from ensnif_mpc.security.mpc_session import PeerBinding

FOLDER = "outsourced"
REQUEST, BATCH, SEALED, REFUSED = "request.json", "batch.bin", "sealed.json", "refused.json"


@dataclass(frozen=True)
class ConversionRequest:
    job_id: str
    owner: str
    dataset: str
    manifest_sha256: str
    outputs: tuple[str, ...]
    rows: bool  # the rows of one series, not totals
    peers: tuple[PeerBinding, ...]
    # What the owner approves: protocol, analyst, release (as the job spec states them).
    job: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        body = asdict(self)
        body["peers"] = [
            {**asdict(p), "binding_signature": base64.b64encode(p.binding_signature).decode()}
            for p in self.peers
        ]
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConversionRequest:
        try:
            body = json.loads(text)
            peers = tuple(
                PeerBinding(**{**p, "binding_signature": base64.b64decode(p["binding_signature"])})
                for p in body.pop("peers")
            )
            body["outputs"] = tuple(body["outputs"])
            return cls(peers=peers, **body)
        except (ValueError, TypeError, KeyError):
            raise InvalidArgument(
                "not a conversion request of an outsourced dataset", reason="he_ciphertext_invalid"
            ) from None


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers see the whole file or none


def write_request(job_dir: Path, request: ConversionRequest, batch: bytes) -> None:
    folder = job_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / BATCH, batch)
    _write(folder / REQUEST, request.to_json().encode())  # last: the request is complete


def read_request(job_dir: Path) -> tuple[ConversionRequest, bytes] | None:
    folder = job_dir / FOLDER
    if not (folder / REQUEST).is_file():
        return None
    request = ConversionRequest.from_json((folder / REQUEST).read_text())
    return request, (folder / BATCH).read_bytes()


def answered(job_dir: Path) -> bool:
    folder = job_dir / FOLDER
    return (folder / SEALED).exists() or (folder / REFUSED).exists()


def write_answer(job_dir: Path, sealed: dict[int, bytes] | None, refusal: str = "") -> None:
    folder = job_dir / FOLDER
    if sealed is None:
        _write(folder / REFUSED, json.dumps({"reason": refusal[:500]}).encode())
        return
    body = {str(i): base64.b64encode(b).decode() for i, b in sealed.items()}
    _write(folder / SEALED, json.dumps(body).encode())


def read_answer(job_dir: Path) -> dict[int, bytes] | str | None:
    """The sealed shares, the owner's refusal (a str), or None while it has not answered."""
    folder = job_dir / FOLDER
    if (folder / REFUSED).exists():
        return str(json.loads((folder / REFUSED).read_text()).get("reason", "refused"))
    if not (folder / SEALED).exists():
        return None
    raw = json.loads((folder / SEALED).read_text())
    return {int(k): base64.b64decode(v) for k, v in raw.items()}


def await_answer(job_dir: Path, window_s: float) -> dict[int, bytes]:
    """What the helper's worker waits for before its MPC connects: the owner's sealed
    shares. ``owner_offline`` when the approval window passes first, ``owner_refused``
    when the owner's client refused the job; in both cases nothing was computed in MPC
    and nothing was opened."""

    def ready() -> dict[int, bytes] | str | None:
        return read_answer(job_dir)

    # mypy solves the TypeVar of a union return as their join; the union is what comes back
    got = cast("dict[int, bytes] | str", outsource.wait_for_owner(ready, window_s))
    if isinstance(got, str):
        raise PermissionDenied(
            f"the dataset's owner refused the job: {got}", reason="owner_refused"
        )
    return got
