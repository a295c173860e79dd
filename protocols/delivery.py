"""Where a job's outputs go: the worker's delivery step, and the ``local`` backend.

A protocol declares each output's destination (``ProtocolDef.destinations``): the analyst,
one named member (``party:<i>``), or an artifact kept secret-shared. After the program
returns, :func:`check_destinations` holds it to that declaration (an output elsewhere is a
program error and nothing is delivered); :func:`seal_parts` seals one
:class:`~ensnif_mpc.results.shares.PartyShares` per recipient into one envelope; and
:func:`artifact_shares` re-randomizes and keeps this party's shares of every artifact.

The backend seam: the worker runs a ``mpyc`` protocol as one MPyC party; a ``local``
protocol (:func:`run_local`) is computed by its only data owner on its own data, with no
MPC session and no MPyC import, and its record is a single "share" holding the values
(``scheme = "single"``); the client combines by the record's scheme. ``he`` protocols
are run by the homomorphic-encryption path, not by this worker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ensnif_mpc.errors import FailedPrecondition
from ensnif_mpc.jobs.protocol import ANALYST, ProtocolDef
from ensnif_mpc.jobs.worker_session import WorkerSession
from ensnif_mpc.results.shares import OutputShare, PartyShares
from ensnif_mpc.security import sealing

if TYPE_CHECKING:
    from protocols.io import LocalData, SecureOutput


def check_destinations(definition: Any, outputs: list[SecureOutput], parties: int) -> None:
    """Every output goes where the protocol declares (an undeclared artifact or a party
    recipient the registry does not name is a program error, and nothing is delivered)."""
    import fnmatch
    import re

    from ensnif_mpc.jobs.protocol import destination_party

    def glob(pattern: str) -> str:  # "c[<i>]" and "SC[<i>,<j>]" as shell patterns
        return re.sub(r"<[^>]+>", "*", pattern.replace("[", "[[]"))

    for out in outputs:
        declared = [
            to
            for pattern, to in definition.destinations.items()
            if fnmatch.fnmatchcase(out.name, glob(pattern))
        ]
        want = declared[0] if declared else ANALYST
        if out.to != want:
            raise ValueError(f"output {out.name!r} goes to {out.to}, declared {want}")
        party = destination_party(out.to)
        if party is not None and not 0 <= party < parties:
            raise ValueError(f"output {out.name!r} names party {party} of {parties}")


def to_member(outputs: list[SecureOutput], session: WorkerSession) -> list[SecureOutput]:
    """A job that releases to a named member (``keep = "to:<member>"``, a model released to
    one of its data owners; ``ensnif_mpc.jobs.protocol.member_recipient``): every output the
    analyst would open goes to that member's party instead, sealed to its certificate, and
    the analyst's part is empty. Unchanged otherwise."""
    from dataclasses import replace

    from ensnif_mpc.jobs.protocol import member_recipient, party_destination

    member = member_recipient(session.params)
    if member is None:
        return outputs
    if member not in session.party_names:
        raise ValueError(f"keep names {member!r}, who is not a party of this session")
    to = party_destination(session.party_names.index(member))
    return [replace(o, to=to) if o.to == ANALYST else o for o in outputs]


async def artifact_shares(
    mpc: Any, session: WorkerSession, kept: list[SecureOutput]
) -> list[dict[str, Any]]:
    """This party's shares of every exported value, as records for the node's store.

    Nothing is opened: every value is re-randomized with a fresh sharing of zero (a
    constant's sharing is the constant at every party), then each party gathers its own
    shares (local) and keeps them with the type and field they live in."""
    from ensnif_mpc.results.artifacts import ArtifactShare, artifact_id

    names = session.party_names or [f"party{i}" for i in range(len(session.addresses))]
    everyone = list(range(len(mpc.parties)))
    fresh = []
    for out in kept:
        sectype = getattr(out.value, "sectype", None) or type(out.value)
        shape = tuple(getattr(out.value, "shape", ()))
        if not shape:
            fresh.append(out.value + mpc.sum(mpc.input(sectype(0), senders=everyone)))
            continue
        fixed = {"integral": False} if getattr(sectype, "frac_length", 0) else {}
        zero = sectype.array(np.zeros(shape, dtype=object if not fixed else float), **fixed)
        fresh.append(
            out.value + mpc.np_sum(mpc.np_stack(mpc.input(zero, senders=everyone)), axis=0)
        )
    gathered = await mpc.gather(fresh) if fresh else []
    records = []
    for out, value, own in zip(kept, fresh, gathered, strict=True):
        sectype = getattr(value, "sectype", None) or type(value)
        shape = tuple(getattr(value, "shape", ()))
        flat = [int(v) for v in np.asarray(getattr(own, "value", own), dtype=object).ravel()]
        frac = int(getattr(sectype, "frac_length", 0))
        records.append(
            ArtifactShare(
                artifact_id=artifact_id(session.job_id, out.name),
                name=out.name,
                job_id=session.job_id,
                protocol=session.protocol,
                x=session.index + 1,
                threshold=session.threshold,
                parties=tuple(names),
                owners=tuple(names[i] for i in session.owners),
                kind="fixed" if frac else "int",
                bit_length=int(sectype.bit_length),
                frac_bits=frac,
                modulus=int(sectype.field.modulus),
                shape=shape,
                shares=tuple(flat),
            ).to_dict()
        )
    return records


def seal_parts(
    session: WorkerSession, shares: list[OutputShare], destinations: list[str], modulus: int
) -> bytes:
    """One PartyShares per recipient, each sealed to its certificate, in one envelope.

    The analyst always has a part (possibly without outputs), so the analyst's client
    sees the job delivered; a member named by an output gets a part only it can open.
    """
    from ensnif_mpc.jobs.protocol import destination_party
    from ensnif_mpc.results import envelope

    recipients: dict[str, tuple[str, list[OutputShare]]] = {
        envelope.ANALYST: (session.analyst_cert_pem, [])
    }
    for share, to in zip(shares, destinations, strict=True):
        party = destination_party(to)
        if party is None:
            recipients[envelope.ANALYST][1].append(share)
            continue
        key = envelope.member(session.party_names[party])
        recipients.setdefault(key, (session.party_cert_pems[party], []))[1].append(share)
    parts = {}
    for key, (cert, mine) in recipients.items():
        payload = PartyShares(
            job_id=session.job_id,
            x=session.index + 1,
            modulus=modulus,
            threshold=session.threshold,
            outputs=tuple(mine),
        )
        aad = envelope.associated(session.job_id, key)
        parts[key] = sealing.seal(cert, payload.to_bytes(), aad)
    return envelope.pack(parts)


def backend_definition(session: WorkerSession) -> ProtocolDef | None:
    """The definition of a job whose backend is not MPyC (None for an MPyC job).

    ``local`` runs here (:func:`run_local`); ``he`` jobs are not run by this worker (the
    homomorphic-encryption path of ensnif_mpc/he and protocols/he_* does), so one reaching
    it fails with that said, before anything is computed."""
    from ensnif_mpc.jobs.member_program import MEMBER_PROTOCOL
    from protocols import registry

    if session.protocol == MEMBER_PROTOCOL:
        return None
    definition = registry.get(session.protocol)
    if definition.backend == "mpyc":
        return None
    if definition.backend != "local":
        raise FailedPrecondition(
            f"protocol {definition.name!r} has backend {definition.backend!r}, which this "
            "worker does not run"
        )
    return definition


def run_local(definition: ProtocolDef, session: WorkerSession, local: LocalData | None) -> bytes:
    """A ``local`` protocol: its program ``(local, params) -> {name: (integer, on_grid)}``
    (on_grid: the integer is on the session's decimal grid) runs at the job's only party,
    a data owner, on its own data; the values are sealed to the analyst as one record
    (``scheme = "single"``), signed by the node as any share."""
    if len(session.addresses) != 1 or local is None:
        raise FailedPrecondition(
            f"protocol {definition.name!r} runs at one data owner alone (backend local): the "
            "job must have exactly one party, a data owner, and no helpers"
        )
    module_name, func_name = definition.program.split(":")
    program = getattr(importlib.import_module(module_name), func_name)
    values: dict[str, tuple[int, bool]] = program(local, dict(session.params))
    outputs = tuple(
        OutputShare(
            name=name,
            share=int(value),
            kind="int",
            decimals=session.decimals if on_grid else 0,
        )
        for name, (value, on_grid) in values.items()
    )
    record = PartyShares(
        job_id=session.job_id, x=1, modulus=0, threshold=0, outputs=outputs, scheme="single"
    )
    from ensnif_mpc.results import envelope

    aad = envelope.associated(session.job_id, envelope.ANALYST)
    return envelope.pack(
        {envelope.ANALYST: sealing.seal(session.analyst_cert_pem, record.to_bytes(), aad)}
    )
