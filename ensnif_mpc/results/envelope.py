"""One delivered blob, several recipients: what each party's node signs and the coordinator stores.

A protocol's outputs may go to the analyst or to named members (``ProtocolDef.destinations``).
Each worker seals one :class:`~ensnif_mpc.results.shares.PartyShares` per recipient, each
to that recipient's certificate; the envelope carries them side by side. The node signs
the whole envelope (``ensnif_mpc.results.delivery``), so the coordinator can neither
drop nor swap a part, and can open none. A blob with the analyst as its only recipient
stays the bare sealed bytes it always was.
"""

from __future__ import annotations

import base64
import json

from ensnif_mpc.errors import CryptoError

MAGIC = b"ENSNIF-ENVELOPE-1\n"
ANALYST = "analyst"


def member(name: str) -> str:
    """The envelope key of a member (a party) as a recipient."""
    return f"member:{name}"


def associated(job_id: str, recipient: str) -> bytes:
    """What a part is sealed under: the job, and for a member its key, so a part cannot be
    moved to another job or presented as another recipient's."""
    return job_id.encode() if recipient == ANALYST else f"{job_id}|{recipient}".encode()


def pack(parts: dict[str, bytes]) -> bytes:
    """The blob for ``parts`` (recipient key → sealed bytes)."""
    if set(parts) == {ANALYST}:
        return parts[ANALYST]
    body = {k: base64.b64encode(v).decode() for k, v in sorted(parts.items())}
    return MAGIC + json.dumps(body, sort_keys=True).encode()


def unpack(blob: bytes) -> dict[str, bytes]:
    """Recipient key → sealed bytes (a bare sealed blob is the analyst's alone)."""
    if not blob.startswith(MAGIC):
        return {ANALYST: blob}
    try:
        raw = json.loads(blob[len(MAGIC) :])
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        return {str(k): base64.b64decode(v, validate=True) for k, v in raw.items()}
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"malformed result envelope: {exc}") from exc


def part_for(blob: bytes, recipient: str) -> bytes | None:
    """The sealed part for ``recipient``, or None when the blob carries none for it."""
    return unpack(blob).get(recipient)
