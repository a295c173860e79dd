"""An outsourced dataset's catalog entry, checked at the coordinator before it is published.

A member without a node entrusts a BFV-encrypted dataset to a helper node
(docs/homomorphic.md, "Outsourced datasets"); the helper publishes it under the OWNER's
name, as the dataset's party, with itself as host. Why the coordinator checks, and not
only the nodes: the catalog is what analysts choose inputs from and what routes a job's
input to a node, so an entry the owner never signed must not appear there at all. A
helper could otherwise claim any member's name for data of its own making and have jobs
believe that member took part. The check needs no key: the owner's consortium
certificate (verified against the consortium CA), its ECDSA signature over the manifest
as uploaded, the manifest naming that owner, that dataset and the publishing node as its
helper. The schema, row count and policy published are the signed manifest's, never the
message's. The helper node makes the same checks at upload and again on every job
(``ensnif_mpc.he.outsource_table.open_stored``), so a coordinator cannot slip one in either.

This module reads the manifest's JSON itself: TenSEAL stays out of the coordinator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import CryptoError, InvalidArgument, InvalidConfig, PermissionDenied
from ensnif_mpc.jobs import join_path
from ensnif_mpc.security import pki

OWNER_ROLES = ("analyst", "party")  # as ensnif_mpc.he.outsource_table.OWNER_ROLES
MANIFEST_FORMAT = "ensnif-outsourced-bfv-v1"  # as ensnif_mpc.he.outsource_table.FORMAT
_POLICY_KEYS = frozenset(f.name for f in fields(PrivacyPolicy)) - {"remaining_rho"}
_COLUMN_KEYS = ("name", "type", "lower", "upper", "decimals")


@dataclass(frozen=True)
class EntrustmentProof:
    """What the helper sends with the entry: the owner's files exactly as uploaded."""

    manifest: bytes
    signature: bytes
    owner_cert_pem: bytes


def _refuse(message: str) -> CryptoError:
    return CryptoError(message, reason="outsourced_not_entrusted")


def verified_entry(
    host: str, claimed: DatasetSchema, proof: EntrustmentProof, ca_pem: bytes
) -> DatasetSchema:
    """The catalog entry the owner's signed manifest supports, published by ``host``."""
    if not proof.manifest or not proof.signature or not proof.owner_cert_pem:
        raise _refuse(
            f"{host!r} publishes {claimed.party}/{claimed.name} as outsourced without the "
            "owner's signed manifest"
        )
    owner = pki.verify_member(proof.owner_cert_pem, ca_pem)
    if owner.role not in OWNER_ROLES:
        raise PermissionDenied(f"{owner.name!r} (role {owner.role}) cannot own a dataset")
    try:
        pki.verify_signature(proof.owner_cert_pem, proof.manifest, proof.signature)
    except CryptoError:
        raise _refuse(
            f"the manifest of {claimed.party}/{claimed.name} is not signed by {owner.name!r}"
        ) from None
    body = _parse(proof.manifest)
    helper = str(body.get("extra", {}).get("helper", ""))
    if body["owner"] != owner.name or claimed.party != owner.name:
        raise _refuse(
            f"the manifest of {claimed.name!r} is signed by {owner.name!r} but names owner "
            f"{body['owner']!r} and is published for {claimed.party!r}"
        )
    if body["dataset"] != claimed.name:
        raise _refuse(f"the signed manifest is for {body['dataset']!r}, not {claimed.name!r}")
    if helper != host:
        raise _refuse(
            f"{owner.name!r} entrusted {claimed.name!r} to {helper or 'no named helper'!r}, "
            f"not to {host!r}"
        )
    return DatasetSchema(
        owner.name,
        claimed.name,
        _columns(body["columns"]),
        int(body["rows"]),
        claimed.description,
        _policy(body.get("policy", {}), claimed.policy.remaining_rho),
        host=host,
        outsourced_sha256=hashlib.sha256(proof.manifest).hexdigest(),
    )


def _parse(manifest: bytes) -> dict[str, Any]:
    try:
        body = json.loads(manifest)
        if body.get("format") != MANIFEST_FORMAT:
            raise ValueError(body.get("format"))
        for key in ("owner", "dataset", "rows", "columns"):
            body[key]  # noqa: B018 - present, or KeyError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise InvalidArgument(
            f"not an {MANIFEST_FORMAT} manifest", reason="he_ciphertext_invalid"
        ) from None
    return dict(body)


def _columns(raw: list[dict[str, Any]]) -> tuple[Column, ...]:
    try:
        return tuple(Column(**{k: c[k] for k in _COLUMN_KEYS}) for c in raw)
    except (KeyError, TypeError, InvalidConfig) as exc:
        raise InvalidArgument(f"the manifest's columns: {exc}") from None


def _policy(raw: dict[str, Any], remaining: float) -> PrivacyPolicy:
    known = {k: v for k, v in dict(raw).items() if k in _POLICY_KEYS}
    if "exact_protocols" in known:
        known["exact_protocols"] = tuple(known["exact_protocols"])
    try:
        return PrivacyPolicy(**known, remaining_rho=remaining)
    except (TypeError, InvalidConfig) as exc:
        raise InvalidArgument(f"the manifest's policy: {exc}") from None


# -- jobs over outsourced datasets, checked at submit -------------------------------------
# The private joins a helper serves with an outsourced side: only on the PRF route
# (protocols/he_join.py says why), so a job must ask for it and its manifest names it.
OUTSOURCED_JOINS = join_path.OUTSOURCED_JOINS
PRF_ROUTE = join_path.PRF
# Why each private join not in OUTSOURCED_JOINS takes no outsourced side (refused at
# submit, ``outsourced_join_unsupported``, before a helper or an owner is asked).
UNSERVED_JOINS = {
    "join_logistic": "each owner clamps its per-key rows into the public feature box and "
    "maps them onto the unit grid in the clear before they enter MPC, which a helper holding "
    "ciphertexts cannot do, and no conversion of an outsourced side into the fit is built",
}


# The model protocols no helper serves with an outsourced input, and why (the others a
# helper does not serve it refuses at Propose, ``protocol_not_allowed``: the owner's signed
# list holds only protocols whose input the conversion gives, party_node/outsourced_admission).
NOT_SERVED = {
    "predict": "predict delivers the scores to the rows' owner, and an outsourced owner has "
    "no node to receive them; score its rows under encryption with `ensnif score` instead",
    "model_accuracy": "the accuracy of a kept model on an outsourced owner's rows would need "
    "its rows converted and scored in MPC, which is not built",
}


def check_job(spec: Any, host_of: Any) -> None:
    """Refuse at submit, before any node is asked, what no helper could serve: a model
    protocol that takes no outsourced input (``outsourced_not_served``), more than one outsourced
    input (``outsourced_one_per_job``), and a private join with an outsourced side off the
    PRF route (``outsourced_join_path``; the helper refuses it too). Reads the catalog's
    hosts only, never data."""
    outsourced = sorted({i.party for i in spec.inputs if host_of(i.party)})
    if outsourced and spec.protocol in NOT_SERVED:
        raise InvalidArgument(
            f"{outsourced[0]}'s dataset is outsourced: {NOT_SERVED[spec.protocol]}",
            reason="outsourced_not_served",
        )
    if len(outsourced) > 1:
        raise InvalidArgument(
            f"a job reads at most one outsourced dataset; this one reads {len(outsourced)} "
            f"({', '.join(outsourced)}): each conversion is one owner's masked batch at one "
            "helper, and the programs take one converted input",
            reason="outsourced_one_per_job",
        )
    if outsourced and spec.protocol in join_path.TAGGED_PROTOCOLS - OUTSOURCED_JOINS:
        why = UNSERVED_JOINS.get(spec.protocol, "no conversion of an outsourced side into it")
        raise InvalidArgument(
            f"{outsourced[0]}'s dataset is outsourced: {spec.protocol} cannot take an "
            f"outsourced side ({why}); the private joins that can: "
            f"{', '.join(sorted(OUTSOURCED_JOINS))}",
            reason="outsourced_join_unsupported",
        )
    if (
        outsourced
        and spec.protocol in OUTSOURCED_JOINS
        and (spec.params or {}).get("join_path") != PRF_ROUTE
    ):
        raise InvalidArgument(
            f"{outsourced[0]}'s dataset is outsourced: {spec.protocol} with an outsourced "
            f'side runs on the PRF route only; set params.join_path = "{PRF_ROUTE}"',
            reason="outsourced_join_path",
        )
