"""A worker's MPC links (protocols.connect): the TLS contexts trust the job's CA only (the
system's trust store is neither loaded nor trusted on an MPC link), require a client
certificate, check the server's party name, and refuse another job's certificate; real
handshakes on loopback. Real MPyC parties linking through ``connect.start`` run in every
worker test (tests/protocols)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from ensnif_mpc.security import mpc_session
from protocols import connect
from tests.helpers import issue_pki


def _job(root: Path, job_id: str, n: int = 3) -> list[Path]:
    """n parties' job directories with the ``.config`` a node writes for MPyC."""
    issued = issue_pki(root / "pki", {f"p{i}": "party" for i in range(n)})
    keys = [issued[f"p{i}"].key.read_bytes() for i in range(n)]
    creds = [mpc_session.mint(job_id, i, keys[i]) for i in range(n)]
    peers = [
        mpc_session.PeerBinding(
            index=i,
            party=f"p{i}",
            mpc_address=f"127.0.0.1:{9000 + i}",
            mpc_cert_pem=creds[i].cert_pem,
            binding_signature=creds[i].binding_signature,
            party_cert_pem=issued[f"p{i}"].cert.read_text(),
        )
        for i in range(n)
    ]
    dirs = []
    for i in range(n):
        d = root / f"party{i}"
        d.mkdir(parents=True)
        mpc_session.write_config(d, i, creds[i], peers)
        dirs.append(d)
    return dirs


def _contexts(directory: Path, pid: int) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return connect.tls_contexts(pid, str(directory / ".config"))


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> str:
    """'ok' with the client certificate's CN seen by the server, else the client's error."""
    seen: list[str] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert") or {}
        seen.extend(v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName")
        writer.close()

    srv = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=name
        )
        await asyncio.sleep(0.05)
        writer.close()
    except (ssl.SSLError, ssl.CertificateError, ConnectionError) as exc:
        return type(exc).__name__
    finally:
        srv.close()
    return "ok " + ",".join(seen)


def test_contexts_trust_only_the_job_peers_and_require_tls12(tmp_path):
    dirs = _job(tmp_path, "job1")
    server, client = _contexts(dirs[1], 1)
    for ctx in (server, client):
        # the job's three per-job certificates are the only trust anchors (no system CA)
        assert ctx.cert_store_stats() == {"x509": 3, "crl": 0, "x509_ca": 0}
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname


@pytest.fixture
def job(tmp_path):
    return _job(tmp_path / "a", "joba")


def test_the_server_sees_the_dialling_party_certificate(job):
    server, _ = _contexts(job[2], 2)
    _, client = _contexts(job[0], 0)
    assert asyncio.run(_handshake(server, client, "MPyC party 2")) == "ok MPyC party 0"


def test_a_server_presenting_another_party_name_is_refused(job):
    server, _ = _contexts(job[2], 2)
    _, client = _contexts(job[0], 0)
    assert asyncio.run(_handshake(server, client, "MPyC party 1")) != "ok MPyC party 0"


def test_another_jobs_certificate_is_refused_both_ways(job, tmp_path):
    other = _job(tmp_path / "b", "jobb")
    server, _ = _contexts(job[2], 2)
    _, stranger = _contexts(other[0], 0)
    assert not asyncio.run(_handshake(server, stranger, "MPyC party 2")).startswith("ok")
    strange_server, _ = _contexts(other[2], 2)
    _, client = _contexts(job[0], 0)
    assert not asyncio.run(_handshake(strange_server, client, "MPyC party 2")).startswith("ok")
