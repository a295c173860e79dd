"""mTLS everywhere: foreign or expired certificates are refused at the TLS layer, and every
call is authorized from the identity in the peer certificate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ensnif_mpc import errors
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.gen.ensnif.v1 import party_pb2, party_pb2_grpc
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client
from ensnif_mpc.security import pki
from ensnif_mpc.security.tls import secure_channel
from tests.consortium import Consortium

pytestmark = pytest.mark.slow

SUM = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)


def profile_for(consortium: Consortium, tmp: Path, ca: Path, cert: pki.CertFiles) -> Path:
    path = tmp / "profile.toml"
    port = consortium.coordinator.port
    path.write_text(
        f'coordinator = "127.0.0.1:{port}"\n[tls]\nca = "{ca}"\n'
        f'cert = "{cert.cert}"\nkey = "{cert.key}"\n'
    )
    return path


def test_client_with_certificate_from_another_ca_is_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    rogue = tmp_path / "rogue"
    pki.init_ca(rogue)
    cert = pki.issue(rogue, "mallory", "analyst")
    profile = profile_for(consortium, tmp_path, consortium.lc.pki_dir / "ca.crt", cert)

    with Client(ClientProfile.load(profile), timeout_s=5) as c, pytest.raises(errors.Unavailable):
        c.protocols()


def test_client_with_expired_certificate_is_refused(consortium: Consortium, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    cert = pki.issue(
        consortium.lc.pki_dir, "oldtimer", "analyst", not_before=past, days=2, out_dir=tmp_path
    )
    profile = profile_for(consortium, tmp_path, consortium.lc.pki_dir / "ca.crt", cert)

    with Client(ClientProfile.load(profile), timeout_s=5) as c, pytest.raises(errors.Unavailable):
        c.protocols()


def test_client_that_does_not_trust_the_server_ca_is_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    rogue = tmp_path / "rogue"
    pki.init_ca(rogue)
    cert = pki.issue(consortium.lc.pki_dir, "carol", "analyst", out_dir=tmp_path)
    profile = profile_for(consortium, tmp_path, rogue / "ca.crt", cert)

    with Client(ClientProfile.load(profile), timeout_s=5) as c, pytest.raises(errors.Unavailable):
        c.protocols()


def test_party_certificate_cannot_submit_jobs(consortium: Consortium, tmp_path: Path) -> None:
    pki_dir = consortium.lc.pki_dir
    files = pki.CertFiles(pki_dir / "ca.crt", pki_dir / "grocery.crt", pki_dir / "grocery.key")
    profile = profile_for(consortium, tmp_path, files.ca, files)

    with Client(ClientProfile.load(profile)) as c, pytest.raises(errors.PermissionDenied) as info:
        c.submit(SUM)

    assert "only analysts submit jobs" in info.value.message


def test_analyst_cannot_call_a_party_node(consortium: Consortium) -> None:
    pki_dir = consortium.lc.pki_dir
    files = pki.CertFiles(pki_dir / "ca.crt", pki_dir / "analyst.crt", pki_dir / "analyst.key")
    channel = secure_channel(f"127.0.0.1:{consortium.nodes['grocery'].port}", files, "grocery")
    stub = party_pb2_grpc.PartyServiceStub(channel)

    with pytest.raises(grpc.RpcError) as info:
        stub.Propose(party_pb2.ProposeRequest(job_id="abc"), timeout=10)
    channel.close()

    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert dict(info.value.trailing_metadata())["ensnif-reason"] == "permission_denied"


def test_another_analyst_cannot_read_the_result(
    consortium: Consortium, client: Client, tmp_path: Path
) -> None:
    job = client.submit(SUM)
    client.wait(job.id, timeout_s=90)
    bob = pki.issue(consortium.lc.pki_dir, "bob", "analyst", out_dir=tmp_path)
    profile = profile_for(consortium, tmp_path, consortium.lc.pki_dir / "ca.crt", bob)

    with Client(ClientProfile.load(profile)) as c:
        with pytest.raises(errors.PermissionDenied):
            c.result(job.id)
        assert job.id not in {j.id for j in c.jobs()}


def test_health_and_reflection_on_both_servers(consortium: Consortium) -> None:
    pki_dir = consortium.lc.pki_dir
    files = pki.CertFiles(pki_dir / "ca.crt", pki_dir / "analyst.crt", pki_dir / "analyst.key")
    targets = {
        "coordinator": (consortium.coordinator.port, "ensnif.v1.CoordinatorService"),
        "grocery": (consortium.nodes["grocery"].port, "ensnif.v1.PartyService"),
    }
    for name, (port, service) in targets.items():
        channel = secure_channel(f"127.0.0.1:{port}", files, name)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        listed = {s.name for r in responses for s in r.list_services_response.service}
        channel.close()

        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert service in listed and "grpc.health.v1.Health" in listed


def test_node_with_certificate_from_another_ca_cannot_join(
    consortium: Consortium, tmp_path: Path
) -> None:
    import dataclasses

    from ensnif_mpc.config import PartyConfig
    from party_node import server as node_server

    rogue = tmp_path / "rogue"
    pki.init_ca(rogue)
    files = pki.issue(rogue, "bakery", "party")
    base = PartyConfig.load(consortium.lc.root / "party-helper.toml")
    cfg = dataclasses.replace(
        base,
        name="bakery",
        listen="127.0.0.1:0",
        advertise="127.0.0.1:0",
        state_dir=tmp_path / "state",
        tls=files,
    )

    node = node_server.start(cfg)
    try:
        registered = node.registrar.registered.wait(4)
    finally:
        node.stop(grace=0)

    assert not registered
    with consortium.client() as c:
        assert "bakery" not in {p.name for p in c.parties()}
