"""Signed delivery of sealed result shares, from a party node to the analyst.

Sealing keeps a share secret from the coordinator; the node's signature keeps
the coordinator from replacing it. The analyst accepts a share only if the
signature verifies under a CA-issued party certificate with the expected name,
and only if every party of the job's session delivered one.
"""

from __future__ import annotations

import hashlib

from ensnif_mpc.errors import CryptoError
from ensnif_mpc.security.pki import sign, verify_member, verify_signature


def share_message(job_id: str, party: str, blob: bytes) -> bytes:
    return (
        b"ensnif-result-share-v1|" + f"{job_id}|{party}|".encode() + hashlib.sha256(blob).digest()
    )


def sign_share(node_key_pem: bytes, job_id: str, party: str, blob: bytes) -> bytes:
    return sign(node_key_pem, share_message(job_id, party, blob))


def verify_share(
    ca_pem: bytes,
    job_id: str,
    party: str,
    blob: bytes,
    signature: bytes,
    party_cert_pem: str,
    host: str = "",
) -> None:
    """``host``: the node the catalog names as playing ``party``'s position (an outsourced
    dataset's owner runs no node); the share is then signed by that node."""
    ident = verify_member(party_cert_pem, ca_pem, role="party")
    if ident.name != (host or party):
        raise CryptoError(
            f"result share labelled {party!r} carries the certificate of {ident.name!r}"
        )
    try:
        verify_signature(party_cert_pem, share_message(job_id, party, blob), signature)
    except CryptoError as exc:
        raise CryptoError(
            f"result share of {party!r} is not signed by that party; it may have been altered"
        ) from exc
