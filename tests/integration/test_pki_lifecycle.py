"""Certificates rotate while the daemons run, and revoked or expired members are refused.

Real servers on loopback (the coordinator and three nodes of ``conftest``), real files:
``pki.rotate`` and ``pki.revoke`` write what ``ensnif pki rotate|revoke`` writes, and the
servers pick it up without a restart.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from ensnif_mpc import errors
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.gen.ensnif.v1 import party_pb2 as ppb, party_pb2_grpc
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.rpc import convert
from ensnif_mpc.sdk.client import Client, state_name
from ensnif_mpc.security import pki
from ensnif_mpc.security.tls import secure_channel
from tests.consortium import Consortium
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

ORDER = ["grocery", "logistics", "helper"]
SUM = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "privacy": {"exact": True},
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)


def files(consortium: Consortium, name: str) -> pki.CertFiles:
    d = consortium.lc.pki_dir
    return pki.CertFiles(d / "ca.crt", d / f"{name}.crt", d / f"{name}.key")


def presented_certificate(port: int, client: pki.CertFiles, server_name: str) -> bytes:
    """The DER certificate a server presents on a new TLS connection (mutual TLS, h2)."""
    ctx = ssl.create_default_context(cafile=str(client.ca))
    ctx.load_cert_chain(str(client.cert), str(client.key))
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(path: Path) -> bytes:
    return pki.load_cert(path).public_bytes(serialization.Encoding.DER)


def profile_for(consortium: Consortium, tmp: Path, cert: pki.CertFiles) -> Path:
    path = tmp / "profile.toml"
    path.write_text(
        f'coordinator = "127.0.0.1:{consortium.coordinator.port}"\n[tls]\n'
        f'ca = "{consortium.lc.pki_dir / "ca.crt"}"\ncert = "{cert.cert}"\nkey = "{cert.key}"\n'
    )
    return path


def registered_certificate(consortium: Consortium, party: str) -> str:
    with consortium.client() as c:
        return next(p.certificate_pem for p in c.parties() if p.name == party)


def test_rotated_node_certificate_is_served_without_restart(consortium: Consortium) -> None:
    node = consortium.nodes["grocery"]
    analyst = files(consortium, "analyst")
    before = presented_certificate(node.port, analyst, "grocery")

    rotation = pki.rotate(consortium.lc.pki_dir, "grocery")

    after = presented_certificate(node.port, analyst, "grocery")
    assert before != after == der(rotation.files.cert)
    assert rotation.backup_cert.read_bytes() != rotation.files.cert.read_bytes()
    channel = secure_channel(f"127.0.0.1:{node.port}", analyst, "grocery")
    health = party_pb2_grpc.PartyServiceStub(channel).Health(ppb.HealthRequest(), timeout=10)
    channel.close()
    assert health.party == "grocery"


def test_rotated_node_registers_its_new_certificate_and_signs_with_its_new_key(
    consortium: Consortium,
) -> None:
    node = consortium.nodes["logistics"]
    rotation = pki.rotate(consortium.lc.pki_dir, "logistics")
    new_pem = rotation.files.cert.read_text()

    node.registrar.wake()
    # The node adopts the new signing key right after the coordinator accepted the new
    # certificate (each share keeps the certificate it was signed under, so the moment in
    # between is harmless): wait for both.
    wait_for(
        lambda: (
            registered_certificate(consortium, "logistics") == new_pem
            and node.node.key_pem == rotation.files.key.read_bytes()
        ),
        15,
        "the node registering its new certificate and signing with its new key",
        interval=0.1,
    )
    # the coordinator still reaches the node (new connections get the new certificate)
    address = f"127.0.0.1:{node.port}"
    reply = consortium.coordinator.dialer.stub("logistics", address).Health(
        ppb.HealthRequest(), timeout=10
    )
    assert reply.party == "logistics"


def test_rotated_coordinator_certificate_is_used_on_new_channels(
    consortium: Consortium,
) -> None:
    dialer = consortium.coordinator.dialer
    address = f"127.0.0.1:{consortium.nodes['helper'].port}"
    dialer.stub("helper", address).Health(ppb.HealthRequest(), timeout=10)

    rotation = pki.rotate(consortium.lc.pki_dir, "coordinator")

    analyst = files(consortium, "analyst")
    assert presented_certificate(consortium.coordinator.port, analyst, "coordinator") == der(
        rotation.files.cert
    )
    assert dialer.stub("helper", address).Health(ppb.HealthRequest(), timeout=10).party == "helper"
    assert dialer._identity.material.serial == rotation.new_serial  # noqa: SLF001


def test_revoked_analyst_is_refused_by_both_servers(consortium: Consortium, tmp_path: Path) -> None:
    eve = pki.issue(consortium.lc.pki_dir, "eve", "analyst", out_dir=tmp_path)
    with Client(ClientProfile.load(profile_for(consortium, tmp_path, eve))) as c:
        assert c.protocols()  # accepted before

    pki.revoke(consortium.lc.pki_dir, name="eve", cert_path=eve.cert, reason="key_compromise")

    with Client(ClientProfile.load(profile_for(consortium, tmp_path, eve))) as c:
        for call in (c.protocols, c.jobs, lambda: c.submit(SUM)):
            with pytest.raises(errors.PermissionDenied) as info:
                call()
            assert info.value.reason == "certificate_revoked"
    channel = secure_channel(f"127.0.0.1:{consortium.nodes['grocery'].port}", eve, "grocery")
    with pytest.raises(grpc.RpcError) as raw:
        party_pb2_grpc.PartyServiceStub(channel).Health(ppb.HealthRequest(), timeout=10)
    channel.close()
    assert raw.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(raw.value.trailing_metadata())["ensnif-reason"] == "certificate_revoked"
    with consortium.client() as c:
        assert c.protocols()  # the other analyst is not affected


def propose_as_coordinator(consortium: Consortium, analyst: pki.CertFiles) -> ppb.ProposeResponse:
    spec = jobspec.sign(SUM, analyst.key.read_bytes(), 1)
    coordinator = files(consortium, "coordinator")
    channel = secure_channel(
        f"127.0.0.1:{consortium.nodes['grocery'].port}", coordinator, "grocery"
    )
    try:
        return party_pb2_grpc.PartyServiceStub(channel).Propose(
            ppb.ProposeRequest(
                job_id=f"lifecycle{analyst.cert.stem}",
                spec=convert.spec_to_pb(spec),
                party_index=0,
                party_order=ORDER,
                analyst_certificate_pem=analyst.cert.read_text(),
                bit_length=48,
                decimals=2,
            ),
            timeout=20,
        )
    finally:
        channel.close()


def test_node_refuses_a_job_for_a_revoked_analyst(consortium: Consortium, tmp_path: Path) -> None:
    mallory = pki.issue(consortium.lc.pki_dir, "mallory", "analyst", out_dir=tmp_path)
    pki.revoke(consortium.lc.pki_dir, name="mallory", cert_path=mallory.cert)

    reply = propose_as_coordinator(consortium, mallory)

    assert reply.decision == ppb.DECISION_REJECTED
    assert reply.reason_code == "untrusted_analyst"
    assert "revoked" in reply.reason


def test_node_refuses_a_job_for_an_expired_analyst(consortium: Consortium, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    oldtimer = pki.issue(
        consortium.lc.pki_dir, "oldtimer", "analyst", not_before=past, days=2, out_dir=tmp_path
    )

    reply = propose_as_coordinator(consortium, oldtimer)

    assert reply.decision == ppb.DECISION_REJECTED
    assert reply.reason_code == "untrusted_analyst"
    assert "expired" in reply.reason


def test_a_result_signed_before_a_node_rotated_still_verifies(consortium: Consortium) -> None:
    """The coordinator hands out the certificate each share was signed under."""
    with consortium.client() as c:
        job = c.wait(c.submit(SUM).id, timeout_s=90)
        assert state_name(job) == "succeeded", job.reason
        before = c.result(job.id)
    rotation = pki.rotate(consortium.lc.pki_dir, "helper")
    consortium.nodes["helper"].registrar.wake()
    wait_for(
        lambda: registered_certificate(consortium, "helper") == rotation.files.cert.read_text(),
        15,
        "the helper registering its new certificate",
        interval=0.1,
    )
    with consortium.client() as c:
        assert c.result(job.id) == before
