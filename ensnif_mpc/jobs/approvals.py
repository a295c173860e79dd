"""Signed decisions on jobs: what a data owner's node (or its administrator) approved.

An approval is the node's consortium key signing (job id, job hash, decision,
approver, time). The job hash covers the submitter-signed spec, nonce included,
so an approval binds to one exact job: the coordinator cannot reuse it for a
changed or replayed job, and anyone holding the CA certificate can check it
(`ensnif job status` does).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.security import pki

DECISIONS = ("approved", "rejected")


def job_hash(spec: JobSpec, protocol_version: int, job_id: str) -> str:
    """This exact job: its signed canonical spec (nonce included) and its id."""
    body = jobspec.canonical(spec, protocol_version) + b"\0" + job_id.encode()
    return hashlib.sha256(body).hexdigest()


def question_key(spec: JobSpec, protocol_version: int, recipient: str) -> str:
    """What makes two jobs "the same question": everything signed but the nonce, the name
    and the parameters that only say how it runs, not what it asks (``sessions``: how
    many parallel MPC sessions; the answer is the same) — protocol and version, inputs by
    role, helpers, the other parameters, privacy — and who receives the answer. Used for
    a policy's repeat limit (which varying ``sessions`` must not get around) and for the
    answer cache."""
    import dataclasses

    from ensnif_mpc.jobs import sessions

    asked = {k: v for k, v in spec.params.items() if k != sessions.PARAM}
    same = dataclasses.replace(spec, nonce="", name="", signature=b"", params=asked)
    body = jobspec.canonical(same, protocol_version) + b"\0" + recipient.encode()
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Decision:
    job_id: str
    decision: str  # approved | rejected
    approver: str  # "policy" for automatic decisions, else the administrator's name
    at: str  # ISO 8601, UTC
    job_hash: str
    signature: str = ""  # hex
    reason: str = ""

    def message(self) -> bytes:
        body = [
            "ensnif-approval-v1",
            self.job_id,
            self.job_hash,
            self.decision,
            self.approver,
            self.at,
            self.reason,
        ]
        return json.dumps(body, separators=(",", ":")).encode()


def sign(decision: Decision, key_pem: bytes) -> Decision:
    if decision.decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}")
    from dataclasses import replace

    return replace(decision, signature=pki.sign(key_pem, decision.message()).hex())


def decide(
    job_id: str, job_hash: str, decision: str, approver: str, reason: str, key_pem: bytes
) -> Decision:
    """A decision taken now, signed with ``key_pem`` (the node's key)."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat()
    return sign(Decision(job_id, decision, approver, now, job_hash, reason=reason), key_pem)


def verify(decision: Decision, party_cert_pem: str | bytes, ca_pem: bytes, party: str) -> None:
    """The decision was signed by ``party``'s node certificate, itself issued by the CA."""
    who = pki.verify_member(party_cert_pem, ca_pem)
    if who.name != party:
        raise CryptoError(f"approval certificate is {who.name!r}, not {party!r}")
    try:
        signature = bytes.fromhex(decision.signature)
    except ValueError:
        raise CryptoError(f"approval of {party} is not hex-encoded") from None
    pki.verify_signature(party_cert_pem, decision.message(), signature)
